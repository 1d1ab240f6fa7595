package engine

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/cedar-policy/cedar-go/types"
)

// Bounds on the conversion of token claims into Cedar attributes.
const (
	MaxClaimDepth  = 8
	MaxClaimValues = 4096
)

// ClaimValue converts a JSON claim value to a Cedar value:
//
//	string → String; bool → Boolean; integer number → Long;
//	fractional number → decimal when it has at most 4 fractional digits and
//	fits Cedar's range (otherwise dropped); array → Set (unconvertible
//	elements dropped); object → Record (unconvertible members dropped);
//	null → dropped.
//
// Nesting deeper than MaxClaimDepth and values beyond the budget are
// dropped.
func ClaimValue(v any, depth int, budget *int) (types.Value, bool) {
	if *budget <= 0 || depth > MaxClaimDepth {
		return nil, false
	}
	*budget--
	switch v := v.(type) {
	case string:
		return types.String(v), true
	case bool:
		return types.Boolean(v), true
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return types.Long(i), true
		}
		if d, err := types.ParseDecimal(string(v)); err == nil {
			return d, true
		}
		return nil, false
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return types.Long(int64(v)), true
		}
		if d, err := types.ParseDecimal(strconv.FormatFloat(v, 'f', -1, 64)); err == nil {
			return d, true
		}
		return nil, false
	case []any:
		vals := make([]types.Value, 0, len(v))
		for _, e := range v {
			if cv, ok := ClaimValue(e, depth+1, budget); ok {
				vals = append(vals, cv)
			}
		}
		return types.NewSet(vals...), true
	case map[string]any:
		m := make(types.RecordMap, len(v))
		for k, e := range v {
			if cv, ok := ClaimValue(e, depth+1, budget); ok {
				m[types.String(k)] = cv
			}
		}
		return types.NewRecord(m), true
	}
	return nil, false
}
