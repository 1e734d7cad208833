package pgv

import (
	"bytes"
	"fmt"
	"net"
	"slices"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// scalar checks a value that is not a message against r (nil: no rules).
func (c *checker) scalar(name string, fd protoreflect.FieldDescriptor, v protoreflect.Value, r *validate.FieldRules, key bool) {
	if r == nil {
		return
	}
	switch t := r.GetType().(type) {
	case *validate.FieldRules_String_:
		c.str(name, v.String(), t.String_, key)
	case *validate.FieldRules_Bytes:
		c.bytes(name, v.Bytes(), t.Bytes, key)
	case *validate.FieldRules_Bool:
		if t.Bool.Const != nil && v.Bool() != t.Bool.GetConst() {
			c.add(name, fmt.Sprintf("value must equal %v", t.Bool.GetConst()), nil, key)
		}
	case *validate.FieldRules_Enum:
		c.enum(name, fd, v.Enum(), t.Enum, key)
	case nil:
	default:
		// One of the numeric rules: FloatRules ... SFixed64Rules, all
		// with the fields const, lt, lte, gt, gte, in, not_in and
		// ignore_empty.
		rm := r.ProtoReflect()
		if od := rm.Descriptor().Oneofs().ByName("type"); od != nil {
			if fd := rm.WhichOneof(od); fd != nil {
				c.number(name, fd.Kind(), v, rm.Get(fd).Message(), key)
			}
		}
	}
}

// number applies numeric rules rm to v.
func (c *checker) number(name string, _ protoreflect.Kind, v protoreflect.Value, rm protoreflect.Message, key bool) {
	fields := rm.Descriptor().Fields()
	get := func(n protoreflect.Name) (protoreflect.Value, bool) {
		fd := fields.ByName(n)
		if fd == nil || !rm.Has(fd) {
			return protoreflect.Value{}, false
		}
		return rm.Get(fd), true
	}
	// Compare as the value's own kind: floats as float64, signed as
	// int64, unsigned as uint64.
	var cls int
	switch v.Interface().(type) {
	case float32, float64:
		cls = 0
	case int32, int64:
		cls = 1
	default:
		cls = 2
	}
	if ie, ok := get("ignore_empty"); ok && ie.Bool() && isZero(v, cls) {
		return
	}
	str := func(x protoreflect.Value) string { return fmt.Sprint(x.Interface()) }
	if cv, ok := get("const"); ok && compare(v, cv, cls) != 0 {
		c.add(name, "value must equal "+str(cv), nil, key)
	}
	var bounds [4]*protoreflect.Value
	for i, n := range []protoreflect.Name{"lt", "lte", "gt", "gte"} {
		if b, ok := get(n); ok {
			bounds[i] = &b
		}
	}
	if reason := ltgtValue(v, bounds, cls, str); reason != "" {
		c.add(name, reason, nil, key)
	}
	in, _ := get("in")
	notIn, _ := get("not_in")
	contains := func(l protoreflect.List) bool {
		for i := 0; i < l.Len(); i++ {
			if compare(v, l.Get(i), cls) == 0 {
				return true
			}
		}
		return false
	}
	switch {
	case in.IsValid() && in.List().Len() > 0:
		if !contains(in.List()) {
			c.add(name, "value must be in list "+listString(in.List()), nil, key)
		}
	case notIn.IsValid() && notIn.List().Len() > 0:
		if contains(notIn.List()) {
			c.add(name, "value must not be in list "+listString(notIn.List()), nil, key)
		}
	}
}

func listString(l protoreflect.List) string {
	xs := make([]any, l.Len())
	for i := range xs {
		xs[i] = l.Get(i).Interface()
	}
	return fmt.Sprint(xs)
}

func isZero(v protoreflect.Value, cls int) bool {
	switch cls {
	case 0:
		return v.Float() == 0
	case 1:
		return v.Int() == 0
	}
	return v.Uint() == 0
}

func compare(a, b protoreflect.Value, cls int) int {
	switch cls {
	case 0:
		return cmpOrdered(a.Float(), b.Float())
	case 1:
		return cmpOrdered(a.Int(), b.Int())
	}
	return cmpOrdered(a.Uint(), b.Uint())
}

// ltgtValue is ltgt for protoreflect values of one class.
func ltgtValue(v protoreflect.Value, b [4]*protoreflect.Value, cls int, str func(protoreflect.Value) string) string {
	switch cls {
	case 0:
		return ltgt(v.Float(), conv(b[0], protoreflect.Value.Float), conv(b[1], protoreflect.Value.Float), conv(b[2], protoreflect.Value.Float), conv(b[3], protoreflect.Value.Float), func(x float64) string { return strOf(b, x, cls, str) })
	case 1:
		return ltgt(v.Int(), conv(b[0], protoreflect.Value.Int), conv(b[1], protoreflect.Value.Int), conv(b[2], protoreflect.Value.Int), conv(b[3], protoreflect.Value.Int), func(x int64) string { return strOf(b, x, cls, str) })
	}
	return ltgt(v.Uint(), conv(b[0], protoreflect.Value.Uint), conv(b[1], protoreflect.Value.Uint), conv(b[2], protoreflect.Value.Uint), conv(b[3], protoreflect.Value.Uint), func(x uint64) string { return strOf(b, x, cls, str) })
}

func conv[T any](v *protoreflect.Value, f func(protoreflect.Value) T) *T {
	if v == nil {
		return nil
	}
	x := f(*v)
	return &x
}

// strOf prints bound x in the rule's own type (a float32 bound as
// float32), as the generated messages do.
func strOf[T int64 | uint64 | float64](b [4]*protoreflect.Value, x T, cls int, str func(protoreflect.Value) string) string {
	for _, v := range b {
		if v == nil {
			continue
		}
		var same bool
		switch cls {
		case 0:
			same = float64(x) == v.Float()
		case 1:
			same = int64(x) == v.Int()
		default:
			same = uint64(x) == v.Uint()
		}
		if same {
			return str(*v)
		}
	}
	return fmt.Sprint(x)
}

func (c *checker) enum(name string, fd protoreflect.FieldDescriptor, n protoreflect.EnumNumber, r *validate.EnumRules, key bool) {
	if r.Const != nil && int32(n) != r.GetConst() {
		c.add(name, fmt.Sprintf("value must equal %v", enumName(fd, r.GetConst())), nil, key)
	}
	names := func(xs []int32) string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = enumName(fd, x)
		}
		return fmt.Sprint(out)
	}
	switch {
	case len(r.In) > 0:
		if !slices.Contains(r.In, int32(n)) {
			c.add(name, "value must be in list "+names(r.In), nil, key)
		}
	case len(r.NotIn) > 0:
		if slices.Contains(r.NotIn, int32(n)) {
			c.add(name, "value must not be in list "+names(r.NotIn), nil, key)
		}
	}
	if r.GetDefinedOnly() && fd.Enum().Values().ByNumber(n) == nil {
		c.add(name, "value must be one of the defined enum values", nil, key)
	}
}

func enumName(fd protoreflect.FieldDescriptor, n int32) string {
	if v := fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)); v != nil {
		return string(v.Name())
	}
	return fmt.Sprint(n)
}

func (c *checker) bytes(name string, b []byte, r *validate.BytesRules, key bool) {
	if r.GetIgnoreEmpty() && len(b) == 0 {
		return
	}
	add := func(reason string) { c.add(name, reason, nil, key) }
	if r.Const != nil && !bytes.Equal(b, r.GetConst()) {
		add(fmt.Sprintf("value must equal %q", r.GetConst()))
	}
	c.byteLen(name, uint64(len(b)), r.Len, r.MinLen, r.MaxLen, key)
	if len(r.Prefix) > 0 && !bytes.HasPrefix(b, r.Prefix) {
		add(fmt.Sprintf("value does not have prefix %q", r.Prefix))
	}
	if len(r.Suffix) > 0 && !bytes.HasSuffix(b, r.Suffix) {
		add(fmt.Sprintf("value does not have suffix %q", r.Suffix))
	}
	if len(r.Contains) > 0 && !bytes.Contains(b, r.Contains) {
		add(fmt.Sprintf("value does not contain %q", r.Contains))
	}
	has := func(xs [][]byte) bool {
		return slices.ContainsFunc(xs, func(x []byte) bool { return bytes.Equal(x, b) })
	}
	switch {
	case len(r.In) > 0:
		if !has(r.In) {
			add(fmt.Sprintf("value must be in list %q", r.In))
		}
	case len(r.NotIn) > 0:
		if has(r.NotIn) {
			add(fmt.Sprintf("value must not be in list %q", r.NotIn))
		}
	}
	switch {
	case r.GetIp():
		if l := len(b); l != 4 && l != 16 {
			add("value must be a valid IP address")
		}
	case r.GetIpv4():
		if len(b) != net.IPv4len {
			add("value must be a valid IPv4 address")
		}
	case r.GetIpv6():
		if len(b) != net.IPv6len {
			add("value must be a valid IPv6 address")
		}
	}
	if r.Pattern != nil && !pattern(r.GetPattern()).Match(b) {
		add(fmt.Sprintf("value does not match regex pattern %q", r.GetPattern()))
	}
}
