package authzen

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/cedar-policy/cedar-go/types"
)

// DecodeValue converts one JSON document to a Cedar value with the rules
// the AuthZEN surface uses for properties and context (MAPPING.md):
// strings, booleans, integers (Long), numbers with at most four decimal
// places (Decimal), arrays (Set), objects (Record), {"__entity":{...}} and
// {"__extn":{...}}. A top-level null yields (nil, nil). maxDepth <= 0 means
// DefaultMaxDepth. Other parts of Vigil that accept JSON values for Cedar
// (policy tests, the CLI) use it so the mapping is the same everywhere.
func DecodeValue(data []byte, maxDepth int) (types.Value, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	var p parser
	n, err := p.decode(bytes.NewBuffer(data), maxDepth)
	if err != nil {
		return nil, err
	}
	v, _, err := toCedar(&n)
	return v, in(err, "value")
}

// toCedar converts a decoded JSON value. present is false for null, which
// the caller omits. Errors carry the path below n.
func toCedar(n *node) (v types.Value, present bool, err error) {
	switch n.kind {
	case kindNull:
		return nil, false, nil
	case kindBool:
		return types.Boolean(n.b), true, nil
	case kindString:
		return types.String(n.s), true, nil
	case kindNumber:
		v, err := numberValue(n.s)
		if err != nil {
			return nil, false, &fieldError{msg: err.Error()}
		}
		return v, true, nil
	case kindArray:
		vals := make([]types.Value, 0, len(n.kids))
		for i := range n.kids {
			v, ok, err := toCedar(&n.kids[i].val)
			if err != nil {
				return nil, false, at(err, i)
			}
			if ok {
				vals = append(vals, v)
			}
		}
		return types.NewSet(vals...), true, nil
	case kindObject:
		for i := range n.kids {
			switch name := n.kids[i].name; name {
			case "__entity", "__extn":
				if len(n.kids) != 1 {
					return nil, false, fieldErr("an object with a %q member must have no other members", name)
				}
				var v types.Value
				if name == "__entity" {
					v, err = entityValue(&n.kids[0].val)
				} else {
					v, err = extensionValue(&n.kids[0].val)
				}
				return v, err == nil, in(err, name)
			}
		}
		m, err := recordMap(n)
		if err != nil {
			return nil, false, err
		}
		return types.NewRecord(m), true, nil
	}
	return nil, false, fieldErr("unsupported JSON value")
}

// recordMap converts the members of an object node, omitting nulls.
func recordMap(n *node) (types.RecordMap, error) {
	m := make(types.RecordMap, len(n.kids))
	for i := range n.kids {
		mem := &n.kids[i]
		v, ok, err := toCedar(&mem.val)
		if err != nil {
			return nil, in(err, mem.name)
		}
		if ok {
			m[types.String(mem.name)] = v
		}
	}
	return m, nil
}

// recordOf converts an object node to a record; any other kind is an error.
func recordOf(n *node) (types.RecordMap, error) {
	if n.kind != kindObject {
		return nil, fieldErr("must be an object, got %s", n.kind)
	}
	for i := range n.kids {
		if name := n.kids[i].name; name == "__entity" || name == "__extn" {
			return nil, in(fieldErr("must hold attributes; an entity reference or extension value is not allowed here"), name)
		}
	}
	return recordMap(n)
}

func entityValue(n *node) (types.Value, error) {
	if n.kind != kindObject {
		return nil, fieldErr("must be an object with \"type\" and \"id\", got %s", n.kind)
	}
	typ, err := entityType(n)
	if err != nil {
		return nil, err
	}
	id := n.get("id")
	if id == nil || id.kind != kindString {
		return nil, in(fieldErr("must be a string"), "id")
	}
	return types.NewEntityUID(typ, types.String(id.s)), nil
}

// entityType reads and validates the "type" member of an object node.
func entityType(n *node) (types.EntityType, error) {
	t := n.get("type")
	if t == nil {
		return "", in(fieldErr("is required"), "type")
	}
	if t.kind != kindString {
		return "", in(fieldErr("must be a string, got %s", t.kind), "type")
	}
	typ, err := types.NewEntityType(t.s)
	if err != nil {
		return "", in(fieldErr("%q is not a valid Cedar entity type name; use identifiers separated by \"::\" such as \"user\" or \"Acme::Document\"", t.s), "type")
	}
	return typ, nil
}

func extensionValue(n *node) (types.Value, error) {
	if n.kind != kindObject {
		return nil, fieldErr("must be an object with \"fn\" and \"arg\", got %s", n.kind)
	}
	fn, arg := n.get("fn"), n.get("arg")
	if fn == nil || fn.kind != kindString {
		return nil, in(fieldErr("must be one of \"ip\", \"decimal\", \"datetime\", \"duration\""), "fn")
	}
	if arg == nil || arg.kind != kindString {
		return nil, in(fieldErr("must be a string"), "arg")
	}
	var (
		v   types.Value
		err error
	)
	switch fn.s {
	case "ip":
		v, err = types.ParseIPAddr(arg.s)
	case "decimal":
		v, err = types.ParseDecimal(arg.s)
	case "datetime":
		v, err = types.ParseDatetime(arg.s)
	case "duration":
		v, err = types.ParseDuration(arg.s)
	default:
		return nil, in(fieldErr("unknown extension function %q; use \"ip\", \"decimal\", \"datetime\" or \"duration\"", fn.s), "fn")
	}
	if err != nil {
		return nil, in(fieldErr("%q is not a valid %s: %v", arg.s, fn.s, err), "arg")
	}
	return v, nil
}

// numberValue converts a JSON number literal exactly: an integral value in
// the 64-bit range is a Long, a value with one to four decimal places is a
// Decimal, and anything else is an error (it cannot be represented without
// rounding, and rounding an authorization input silently is not safe).
func numberValue(lit string) (types.Value, error) {
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return types.Long(n), nil
	}
	neg := len(lit) > 0 && lit[0] == '-'
	s := lit
	if neg {
		s = s[1:]
	}
	// Split the literal into significant digits and a decimal exponent:
	// value = digits × 10^exp.
	var digits []byte
	exp := 0
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits = append(digits, s[i])
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits = append(digits, s[i])
			exp--
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		e := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if e < 1e8 { // saturate: anything larger is out of range anyway
				e = e*10 + int(s[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(s) || len(digits) == 0 {
		return nil, fmt.Errorf("%q is not a JSON number", lit)
	}
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return types.Long(0), nil
	}
	for digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if exp < -4 {
		return nil, fmt.Errorf("number %s has more than 4 decimal places; Cedar decimals hold at most 4 (round it, scale it to an integer, or send it as a string)", lit)
	}
	// Integral values, and decimals in ten-thousandths, must fit an int64.
	if len(digits)+max(exp, 0) > 19 {
		return nil, rangeError(lit, exp)
	}
	u, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return nil, rangeError(lit, exp)
	}
	for range max(exp, 0) {
		u *= 10 // cannot overflow: at most 19 digits in total
	}
	if (!neg && u > 1<<63-1) || (neg && u > 1<<63) {
		return nil, rangeError(lit, exp)
	}
	n := int64(u)
	if neg {
		n = -n // for u == 1<<63 this wraps to MinInt64, which is right
	}
	if exp >= 0 {
		return types.Long(n), nil
	}
	d, err := types.NewDecimal(n, exp)
	if err != nil {
		return nil, rangeError(lit, exp)
	}
	return d, nil
}

func rangeError(lit string, exp int) error {
	if exp >= 0 {
		return fmt.Errorf("integer %s is outside the range of a Cedar Long (-9223372036854775808 to 9223372036854775807); send it as a string", lit)
	}
	return fmt.Errorf("number %s is outside the range of a Cedar decimal (-922337203685477.5808 to 922337203685477.5807); send it as a string", lit)
}
