package policytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// Limits on converted values. Test files and eval requests are untrusted
// input; YAML aliases in particular can make a small file describe a huge
// value, so conversion has a budget.
const (
	// MaxDepth is how deeply records and sets may nest.
	MaxDepth = 32
	// MaxValues is how many Cedar values one conversion (ToCedar,
	// ParseRequest) or one test file may produce in total.
	MaxValues = 1 << 20
)

// ToCedar converts a value decoded from JSON or YAML into a Cedar value.
//
// The rules (documented in docs/policies.md):
//
//   - string → String; bool → Boolean.
//   - A whole number (42, -7, 3.0) → Long; it must fit in 64 bits.
//   - Any other number (1.5, 0.25) → decimal, which has at most four digits
//     after the point; more digits or a value outside decimal's range is an
//     error rather than a silent rounding.
//   - array → Set (duplicates collapse).
//   - object → Record, except the two escapes of Cedar's JSON format, which
//     must then be the only key: {"__entity": {"type": T, "id": I}} → the
//     entity reference T::"I", and {"__extn": {"fn": F, "arg": A}} → the
//     extension value F(A) for F one of ip, decimal, datetime, duration.
//   - null → error: Cedar has no null; leave the attribute out instead.
//
// Numbers decoded as float64 (encoding/json without UseNumber) are taken
// at their shortest decimal representation. A types.Value passes through
// unchanged. Nesting deeper than MaxDepth or more than MaxValues values are
// errors.
func ToCedar(v any) (types.Value, error) {
	c := newConverter()
	return c.value("", v, 0)
}

// ToRecord is ToCedar for values that must be records, such as a request
// context. nil gives the empty record.
func ToRecord(v any) (types.Record, error) {
	c := newConverter()
	return c.record("", v)
}

// converter carries the value budget across the conversions of one input.
type converter struct {
	budget int
}

func newConverter() *converter { return &converter{budget: MaxValues} }

// pathErr is a conversion error at a path inside the converted value.
type pathErr struct {
	path string
	msg  string
}

func (e *pathErr) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

func errAt(path, format string, args ...any) error {
	return &pathErr{path: path, msg: fmt.Sprintf(format, args...)}
}

func joinKey(path, key string) string {
	if !isIdent(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// nest places an error found at a path relative to a child below that
// child's path.
func nest(parent string, err error) error {
	var pe *pathErr
	if !errors.As(err, &pe) {
		return &pathErr{path: parent, msg: err.Error()}
	}
	return &pathErr{path: concatPath(parent, pe.path), msg: pe.msg}
}

func concatPath(a, b string) string {
	switch {
	case b == "":
		return a
	case a == "":
		return b
	case b[0] == '[':
		return a + b
	}
	return a + "." + b
}

func joinIndex(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

func (c *converter) spend(path string) error {
	if c.budget <= 0 {
		return errAt(path, "too many values; at most %d are allowed", MaxValues)
	}
	c.budget--
	return nil
}

// record converts an object into a Record; nil is the empty record.
func (c *converter) record(path string, v any) (types.Record, error) {
	if v == nil {
		return types.Record{}, nil
	}
	if r, ok := v.(types.Record); ok {
		return r, nil
	}
	m, ok := asMap(v)
	if !ok {
		return types.Record{}, errAt(path, "want an object (a record), got %s", describe(v))
	}
	val, err := c.object(path, m, 0)
	if err != nil {
		return types.Record{}, err
	}
	r, ok := val.(types.Record)
	if !ok {
		return types.Record{}, errAt(path, "want an object (a record), got %s", val)
	}
	return r, nil
}

func (c *converter) value(path string, v any, depth int) (types.Value, error) {
	if err := c.spend(path); err != nil {
		return nil, err
	}
	if depth > MaxDepth {
		return nil, errAt(path, "nested more than %d levels deep", MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		return nil, errAt(path, "null has no Cedar equivalent; leave the attribute out")
	case types.Value:
		return x, nil
	case string:
		return types.String(x), nil
	case bool:
		return types.Boolean(x), nil
	case int:
		return types.Long(x), nil
	case int8:
		return types.Long(x), nil
	case int16:
		return types.Long(x), nil
	case int32:
		return types.Long(x), nil
	case int64:
		return types.Long(x), nil
	case uint:
		return unsignedLong(path, uint64(x))
	case uint8:
		return types.Long(x), nil
	case uint16:
		return types.Long(x), nil
	case uint32:
		return types.Long(x), nil
	case uint64:
		return unsignedLong(path, x)
	case float32:
		return floatValue(path, float64(x), 32)
	case float64:
		return floatValue(path, x, 64)
	case json.Number:
		return numberValue(path, string(x))
	case time.Time:
		return types.NewDatetime(x), nil
	case []any:
		return c.set(path, x, depth)
	case map[string]any:
		return c.object(path, x, depth)
	}
	// Other slice and map types (for example []string from a Go caller).
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			break // []byte: no Cedar equivalent
		}
		items := make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
		}
		return c.set(path, items, depth)
	case reflect.Map:
		if m, ok := asMap(v); ok {
			return c.object(path, m, depth)
		}
		return nil, errAt(path, "object keys must be strings")
	}
	return nil, errAt(path, "%s has no Cedar equivalent", describe(v))
}

func (c *converter) set(path string, items []any, depth int) (types.Value, error) {
	vals := make([]types.Value, len(items))
	for i, it := range items {
		// Paths are built only on error: they would cost an allocation
		// per value otherwise.
		v, err := c.value("", it, depth+1)
		if err != nil {
			return nil, nest(joinIndex(path, i), err)
		}
		vals[i] = v
	}
	return types.NewSet(vals...), nil
}

func (c *converter) object(path string, m map[string]any, depth int) (types.Value, error) {
	if raw, ok := m["__entity"]; ok {
		if len(m) != 1 {
			return nil, errAt(path, `an object with "__entity" must have no other keys`)
		}
		uid, err := uidFromObject(joinKey(path, "__entity"), raw)
		if err != nil {
			return nil, err
		}
		return uid, nil
	}
	if raw, ok := m["__extn"]; ok {
		if len(m) != 1 {
			return nil, errAt(path, `an object with "__extn" must have no other keys`)
		}
		return extension(joinKey(path, "__extn"), raw)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic error reporting
	rm := make(types.RecordMap, len(m))
	for _, k := range keys {
		v, err := c.value("", m[k], depth+1)
		if err != nil {
			return nil, nest(joinKey(path, k), err)
		}
		rm[types.String(k)] = v
	}
	return types.NewRecord(rm), nil
}

// asMap returns v as a map with string keys when it is one.
func asMap(v any) (map[string]any, bool) {
	if m, ok := v.(map[string]any); ok {
		return m, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	m := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		m[it.Key().String()] = it.Value().Interface()
	}
	return m, true
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, json.Number:
		return "a number"
	}
	return fmt.Sprintf("a value of Go type %T", v)
}

func unsignedLong(path string, u uint64) (types.Value, error) {
	if u > math.MaxInt64 {
		return nil, errAt(path, "%d does not fit in a Long (64-bit signed integer)", u)
	}
	return types.Long(u), nil
}

func floatValue(path string, f float64, bits int) (types.Value, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errAt(path, "%v has no Cedar equivalent", f)
	}
	return numberValue(path, strconv.FormatFloat(f, 'g', -1, bits))
}

// numberRE is JSON's number grammar.
var numberRE = regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$`)

// numberValue converts the text of a number: whole numbers become Long,
// others decimal.
func numberValue(path, s string) (types.Value, error) {
	if len(s) > 64 {
		return nil, errAt(path, "number %.20s… is too long", s)
	}
	if !numberRE.MatchString(s) {
		return nil, errAt(path, "%q is not a number", s)
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return types.Long(i), nil
	}
	// Bound the exponent before big.Rat sees it: 1e999999999 is short but
	// would take gigabytes to expand. Anything past 1e40 is out of range
	// anyway, and a mantissa of at most 64 digits times 1e-100 is either
	// zero or has more than four digits after the point.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 40 || e < -100 {
			return nil, errAt(path, "%s is outside the range of a Cedar Long or decimal", s)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, errAt(path, "%q is not a number", s)
	}
	if r.IsInt() {
		if !r.Num().IsInt64() {
			return nil, errAt(path, "%s does not fit in a Long (64-bit signed integer)", s)
		}
		return types.Long(r.Num().Int64()), nil
	}
	scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
	if !scaled.IsInt() {
		return nil, errAt(path, "%s has more than four digits after the point; Cedar decimals have at most four", s)
	}
	if !scaled.Num().IsInt64() {
		return nil, errAt(path, "%s is outside the range of a Cedar decimal", s)
	}
	d, err := types.NewDecimal(scaled.Num().Int64(), -4)
	if err != nil {
		return nil, errAt(path, "%s is outside the range of a Cedar decimal", s)
	}
	return d, nil
}

// extension converts the body of an {"__extn": {"fn": F, "arg": A}} escape.
func extension(path string, raw any) (types.Value, error) {
	m, ok := asMap(raw)
	if !ok {
		return nil, errAt(path, `want {"fn": ..., "arg": ...}, got %s`, describe(raw))
	}
	for k := range m {
		if k != "fn" && k != "arg" {
			return nil, errAt(path, `unknown key %q; want only "fn" and "arg"`, k)
		}
	}
	fn, ok := m["fn"].(string)
	if !ok {
		return nil, errAt(path, `"fn" must be a string naming the extension function (ip, decimal, datetime, duration)`)
	}
	arg, ok := m["arg"].(string)
	if !ok {
		return nil, errAt(path, `"arg" must be a string`)
	}
	var (
		v   types.Value
		err error
	)
	switch fn {
	case "ip":
		v, err = types.ParseIPAddr(arg)
	case "decimal":
		v, err = types.ParseDecimal(arg)
	case "datetime":
		v, err = types.ParseDatetime(arg)
	case "duration":
		v, err = types.ParseDuration(arg)
	default:
		return nil, errAt(path, "unknown extension function %q; want ip, decimal, datetime or duration", fn)
	}
	if err != nil {
		return nil, errAt(path, "%s(%q): %v", fn, arg, err)
	}
	return v, nil
}

// ParseUID parses an entity UID in Cedar syntax, Type::"id" (for example
// User::"alice" or Api::Document::"d1").
func ParseUID(s string) (types.EntityUID, error) {
	return parseUIDString("", s)
}

func parseUIDString(path, s string) (types.EntityUID, error) {
	if len(s) > 4096 {
		return types.EntityUID{}, errAt(path, "entity UID is longer than 4096 bytes")
	}
	var uid types.EntityUID
	if err := uid.UnmarshalCedar([]byte(s)); err != nil {
		return types.EntityUID{}, errAt(path, `invalid entity UID %q; write Type::"id", for example User::"alice"`, s)
	}
	return uid, nil
}

// uid converts a UID written as a string in Cedar syntax, as {type, id}, or
// as {"__entity": {type, id}}.
func uid(path string, v any) (types.EntityUID, error) {
	switch x := v.(type) {
	case nil:
		return types.EntityUID{}, errAt(path, `missing; write Type::"id", for example User::"alice"`)
	case string:
		return parseUIDString(path, x)
	case types.EntityUID:
		return x, nil
	}
	m, ok := asMap(v)
	if !ok {
		return types.EntityUID{}, errAt(path, `want an entity UID (Type::"id" or {type: ..., id: ...}), got %s`, describe(v))
	}
	if raw, ok := m["__entity"]; ok && len(m) == 1 {
		return uidFromObject(joinKey(path, "__entity"), raw)
	}
	return uidFromObject(path, m)
}

// actionUID is uid with one shorthand: a bare name without "::" or quotes
// stands for Action::"name".
func actionUID(path string, v any) (types.EntityUID, error) {
	if s, ok := v.(string); ok && s != "" && !strings.Contains(s, "::") && !strings.Contains(s, `"`) {
		return types.NewEntityUID("Action", types.String(s)), nil
	}
	return uid(path, v)
}

func uidFromObject(path string, raw any) (types.EntityUID, error) {
	m, ok := asMap(raw)
	if !ok {
		return types.EntityUID{}, errAt(path, `want {type: ..., id: ...}, got %s`, describe(raw))
	}
	for k := range m {
		if k != "type" && k != "id" {
			return types.EntityUID{}, errAt(path, `unknown key %q in entity UID; want only "type" and "id"`, k)
		}
	}
	typ, ok := m["type"].(string)
	if !ok {
		return types.EntityUID{}, errAt(path, `entity UID needs "type", a string such as "User"`)
	}
	id, ok := m["id"].(string)
	if !ok {
		return types.EntityUID{}, errAt(path, `entity UID needs "id", a string`)
	}
	et, err := types.NewEntityType(typ)
	if err != nil {
		return types.EntityUID{}, errAt(path, "invalid entity type %q; want a name such as User or Api::Document", typ)
	}
	return types.NewEntityUID(et, types.String(id)), nil
}

// uidList converts a list of UIDs (entity parents).
func uidList(path string, v any) ([]types.EntityUID, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, errAt(path, "want a list of entity UIDs, got %s", describe(v))
	}
	out := make([]types.EntityUID, 0, len(items))
	for i, it := range items {
		u, err := uid(joinIndex(path, i), it)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// pathOf returns the path of a conversion error, "" if it has none.
func pathOf(err error) string {
	var pe *pathErr
	if errors.As(err, &pe) {
		return pe.path
	}
	return ""
}
