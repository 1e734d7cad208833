// Package pgv checks the protoc-gen-validate rules of Envoy's xDS messages
// (the (validate.rules) options in their descriptors) by reflection.
//
// It answers what the generated ValidateAll methods of go-control-plane
// answer, with errors worded the same way, without calling them: a binary
// that calls ValidateAll through an interface anywhere links the
// generated validation code of every message type it links (Go's linker
// keeps a method of every type in an interface once any interface call of
// that method name is reachable), 4.5 MB of fedmesh-proxy's 22 MB. The
// rules are read from the descriptors, which the binary holds anyway, on
// first use of each field, and kept.
//
// Which messages carry rules: those of the proto packages envoy.*, xds.*
// and udpa.*, which go-control-plane and cncf/xds generate validation for
// (pgv_test.go checks this against the generated methods, and checks
// Validate against ValidateAll on resources and fuzzed input).
package pgv

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Validate checks m and the messages it embeds against their rules and
// returns every violation, joined with "; " as ValidateAll's MultiError
// joins them, or nil. Messages packed in an Any are not opened, as
// ValidateAll does not open them.
func Validate(m proto.Message) error {
	if m == nil {
		return nil
	}
	errs := validateMessage(m.ProtoReflect())
	if len(errs) == 0 {
		return nil
	}
	return multiError(errs)
}

// multiError is a list of violations, printed as ValidateAll's MultiError
// prints them.
type multiError []error

func (m multiError) Error() string {
	msgs := make([]string, len(m))
	for i, err := range m {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the violations.
func (m multiError) Unwrap() []error { return m }

// violation is one broken rule, printed as the generated
// XxxValidationError prints it.
type violation struct {
	msg    string // the message's Go type name
	field  string // the field's Go name, with [index] or [key]
	reason string
	cause  error
	key    bool // the rule broken is one of a map key
}

func (e violation) Error() string {
	cause, key := "", ""
	if e.cause != nil {
		cause = fmt.Sprintf(" | caused by: %v", e.cause)
	}
	if e.key {
		key = "key for "
	}
	return fmt.Sprintf("invalid %s%s.%s: %s%s", key, e.msg, e.field, e.reason, cause)
}

func (e violation) Unwrap() error { return e.cause }

// hasRules reports whether messages of md's type are validated:
// go-control-plane and cncf/xds generate validation for every message of
// their packages, except those marked (validate.ignored).
func hasRules(md protoreflect.MessageDescriptor) bool {
	pkg := string(md.ParentFile().Package())
	if !strings.HasPrefix(pkg, "envoy.") && !strings.HasPrefix(pkg, "xds.") && !strings.HasPrefix(pkg, "udpa.") {
		return false
	}
	return !msgOption(md, validate.E_Ignored)
}

func msgOption(md protoreflect.MessageDescriptor, ext protoreflect.ExtensionType) bool {
	o, ok := md.Options().(*descriptorpb.MessageOptions)
	return ok && o != nil && proto.HasExtension(o, ext) && proto.GetExtension(o, ext).(bool)
}

// msgInfo is what validation needs of a message type, computed once.
type msgInfo struct {
	name     string // Go type name, as in the generated errors
	checked  bool   // hasRules
	disabled bool
	fields   []*fieldInfo // non-oneof fields with something to check
	oneofs   []oneofInfo
}

type oneofInfo struct {
	desc     protoreflect.OneofDescriptor
	name     string
	required bool
	fields   map[protoreflect.FieldNumber]*fieldInfo
}

// fieldInfo is a field's rules, resolved as protoc-gen-validate resolves
// them (shared/context.go): the rule kind, or for a field without typed
// rules "message", "repeated", "map" or "none" by its type.
type fieldInfo struct {
	desc  protoreflect.FieldDescriptor
	name  string
	rules *validate.FieldRules
}

var infos sync.Map // protoreflect.FullName -> *msgInfo

func info(md protoreflect.MessageDescriptor) *msgInfo {
	if v, ok := infos.Load(md.FullName()); ok {
		return v.(*msgInfo)
	}
	mi := &msgInfo{name: goTypeName(md), checked: hasRules(md)}
	if !mi.checked {
		v, _ := infos.LoadOrStore(md.FullName(), mi)
		return v.(*msgInfo)
	}
	mi.disabled = msgOption(md, validate.E_Disabled)
	oneofIdx := map[protoreflect.FullName]int{}
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		if od.IsSynthetic() {
			continue
		}
		req := false
		if o, ok := od.Options().(*descriptorpb.OneofOptions); ok && o != nil && proto.HasExtension(o, validate.E_Required) {
			req = proto.GetExtension(o, validate.E_Required).(bool)
		}
		oneofIdx[od.FullName()] = len(mi.oneofs)
		mi.oneofs = append(mi.oneofs, oneofInfo{desc: od, name: goCamelCase(string(od.Name())), required: req, fields: map[protoreflect.FieldNumber]*fieldInfo{}})
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		fi := &fieldInfo{desc: fd, name: goCamelCase(string(fd.Name())), rules: fieldRules(fd)}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			mi.oneofs[oneofIdx[od.FullName()]].fields[fd.Number()] = fi
			continue
		}
		if fi.rules == nil && !embeds(fd) {
			continue
		}
		mi.fields = append(mi.fields, fi)
	}
	v, _ := infos.LoadOrStore(md.FullName(), mi)
	return v.(*msgInfo)
}

// embeds reports whether a field without rules still has something to
// check: messages it holds, which may have rules of their own.
func embeds(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return fd.MapValue().Message() != nil
	}
	return fd.Message() != nil
}

func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	o, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || o == nil || !proto.HasExtension(o, validate.E_Rules) {
		return nil
	}
	return proto.GetExtension(o, validate.E_Rules).(*validate.FieldRules)
}

// goTypeName is the Go name protoc-gen-go gives md: nested messages are
// Parent_Child.
func goTypeName(md protoreflect.MessageDescriptor) string {
	name := string(md.Name())
	for p := md.Parent(); p != nil; p = p.Parent() {
		pm, ok := p.(protoreflect.MessageDescriptor)
		if !ok {
			break
		}
		name = string(pm.Name()) + "_" + name
	}
	return name
}

// goCamelCase is protoc-gen-go's field name conversion (GoCamelCase).
func goCamelCase(s string) string {
	var b []byte
	lower := func(c byte) bool { return 'a' <= c && c <= 'z' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && i+1 < len(s) && lower(s[i+1]):
		case c == '.':
			b = append(b, '_')
		case c == '_' && (i == 0 || s[i-1] == '.'):
			b = append(b, 'X')
		case c == '_' && i+1 < len(s) && lower(s[i+1]):
		case '0' <= c && c <= '9':
			b = append(b, c)
		default:
			if lower(c) {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			for ; i+1 < len(s) && lower(s[i+1]); i++ {
				b = append(b, s[i+1])
			}
		}
	}
	return string(b)
}

func validateMessage(m protoreflect.Message) []error {
	if !m.IsValid() {
		return nil
	}
	mi := info(m.Descriptor())
	if !mi.checked || mi.disabled {
		return nil
	}
	c := checker{msg: mi.name}
	for _, fi := range mi.fields {
		if od := fi.desc.ContainingOneof(); od != nil && od.IsSynthetic() && !m.Has(fi.desc) {
			continue // proto3 optional: rules apply when set
		}
		c.field(fi, m.Get(fi.desc), m.Has(fi.desc))
	}
	for _, oi := range mi.oneofs {
		fd := m.WhichOneof(oi.desc)
		if fd == nil {
			if oi.required {
				c.add(oi.name, "value is required", nil, false)
			}
			continue
		}
		c.field(oi.fields[fd.Number()], m.Get(fd), true)
	}
	return c.errs
}

// The rules of fields that have none, for reading with direct field
// access.
var (
	noRepeatedRules = &validate.RepeatedRules{}
	noMapRules      = &validate.MapRules{}
)

// checker gathers the violations of one message.
type checker struct {
	msg  string
	errs []error
}

func (c *checker) add(field, reason string, cause error, key bool) {
	c.errs = append(c.errs, violation{msg: c.msg, field: field, reason: reason, cause: cause, key: key})
}

// field checks one field's value v (set reports presence, for message
// fields).
func (c *checker) field(fi *fieldInfo, v protoreflect.Value, set bool) {
	fd, r := fi.desc, fi.rules
	switch {
	case fd.IsMap():
		c.mapField(fi.name, fd, v.Map(), r.GetMap())
	case fd.IsList():
		c.list(fi.name, fd, v.List(), r.GetRepeated())
	default:
		c.single(fi.name, fd, v, set, r, false)
	}
}

// single checks one value (a field, a list item, a map key or value)
// against r, which may be nil.
func (c *checker) single(name string, fd protoreflect.FieldDescriptor, v protoreflect.Value, set bool, r *validate.FieldRules, key bool) {
	if fd.Message() == nil {
		c.scalar(name, fd, v, r, key)
		return
	}
	msg := v.Message()
	if !set {
		msg = nil
	}
	switch r.GetType().(type) {
	case *validate.FieldRules_Duration:
		c.duration(name, msg, r.GetDuration())
		return
	case *validate.FieldRules_Timestamp:
		c.timestamp(name, msg, r.GetTimestamp())
		return
	case *validate.FieldRules_Any:
		c.any(name, msg, r.GetAny())
		return
	case nil:
	default:
		// Scalar rules on a message field: a wrapper (UInt32Value ...).
		if msg == nil {
			if r.GetMessage().GetRequired() {
				c.add(name, "value is required and must not be nil.", nil, key)
			}
			return
		}
		inner := msg.Descriptor().Fields().ByName("value")
		if inner == nil {
			return
		}
		c.scalar(name, inner, msg.Get(inner), r, key)
		return
	}
	if r.GetMessage().GetRequired() && msg == nil {
		c.add(name, "value is required", nil, key)
	}
	if r.GetMessage().GetSkip() || msg == nil {
		return
	}
	if errs := validateMessage(msg); len(errs) > 0 {
		c.add(name, "embedded message failed validation", multiError(errs), key)
	}
}

func (c *checker) list(name string, fd protoreflect.FieldDescriptor, l protoreflect.List, r *validate.RepeatedRules) {
	if r == nil {
		r = noRepeatedRules
	}
	n := uint64(l.Len())
	if r.GetIgnoreEmpty() && n == 0 {
		return
	}
	c.count(name, n, r.MinItems, r.MaxItems, "item(s)", "items")
	items := r.GetItems()
	var seen map[any]bool
	if r.GetUnique() {
		seen = make(map[any]bool, n)
	}
	if seen == nil && items.GetType() == nil && fd.Message() == nil {
		return
	}
	for i := 0; i < l.Len(); i++ {
		v := l.Get(i)
		iname := fmt.Sprintf("%s[%v]", name, i)
		if seen != nil {
			k := v.Interface()
			if b, ok := k.([]byte); ok {
				k = string(b)
			}
			if fd.Message() == nil {
				if seen[k] {
					c.add(iname, "repeated value must contain unique items", nil, false)
				}
				seen[k] = true
			}
		}
		c.single(iname, fd, v, true, items, false)
	}
}

func (c *checker) mapField(name string, fd protoreflect.FieldDescriptor, m protoreflect.Map, r *validate.MapRules) {
	if r == nil {
		r = noMapRules
	}
	n := uint64(m.Len())
	if r.GetIgnoreEmpty() && n == 0 {
		return
	}
	c.count(name, n, r.MinPairs, r.MaxPairs, "pair(s)", "pairs")
	kd, vd := fd.MapKey(), fd.MapValue()
	if !r.GetNoSparse() && r.GetKeys().GetType() == nil && r.GetValues().GetType() == nil && vd.Message() == nil {
		return
	}
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return compareKeys(a.Value(), b.Value()) })
	for _, k := range keys {
		kname := fmt.Sprintf("%s[%v]", name, k.Interface())
		v := m.Get(k)
		if r.GetNoSparse() && vd.Message() != nil && !v.Message().IsValid() {
			c.add(kname, "value cannot be sparse, all pairs must be non-nil", nil, false)
		}
		// The generated code does not mark key violations as such.
		c.single(kname, kd, k.Value(), true, r.GetKeys(), false)
		c.single(kname, vd, v, v.Message().IsValid() || vd.Message() == nil, r.GetValues(), false)
	}
}

func compareKeys(a, b protoreflect.Value) int {
	switch x := a.Interface().(type) {
	case string:
		return strings.Compare(x, b.String())
	case bool:
		switch {
		case x == b.Bool():
			return 0
		case !x:
			return -1
		}
		return 1
	case int32, int64:
		return cmpOrdered(a.Int(), b.Int())
	default:
		return cmpOrdered(a.Uint(), b.Uint())
	}
}

func cmpOrdered[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// count checks a list's or map's size against min and max (nil: unset).
func (c *checker) count(name string, n uint64, minp, maxp *uint64, unit, units string) {
	switch {
	case minp != nil && *minp != 0 && maxp != nil && *minp == *maxp:
		if n != *minp {
			c.add(name, fmt.Sprintf("value must contain exactly %d %s", *minp, unit), nil, false)
		}
	case minp != nil && *minp != 0 && maxp != nil:
		if n < *minp || n > *maxp {
			c.add(name, fmt.Sprintf("value must contain between %d and %d %s, inclusive", *minp, *maxp, units), nil, false)
		}
	case minp != nil && *minp != 0:
		if n < *minp {
			c.add(name, fmt.Sprintf("value must contain at least %d %s", *minp, unit), nil, false)
		}
	case maxp != nil:
		if n > *maxp {
			c.add(name, fmt.Sprintf("value must contain no more than %d %s", *maxp, unit), nil, false)
		}
	}
}

func (c *checker) any(name string, m protoreflect.Message, r *validate.AnyRules) {
	if m == nil {
		if r.GetRequired() {
			c.add(name, "value is required", nil, false)
		}
		return
	}
	url := m.Get(m.Descriptor().Fields().ByName("type_url")).String()
	if len(r.In) > 0 && !slices.Contains(r.In, url) {
		c.add(name, fmt.Sprintf("type URL must be in list %v", r.In), nil, false)
	} else if len(r.In) == 0 && len(r.NotIn) > 0 && slices.Contains(r.NotIn, url) {
		c.add(name, fmt.Sprintf("type URL must not be in list %v", r.NotIn), nil, false)
	}
}

// seconds and nanos read a Duration or Timestamp message.
func secondsNanos(m protoreflect.Message) (int64, int32) {
	f := m.Descriptor().Fields()
	return m.Get(f.ByName("seconds")).Int(), int32(m.Get(f.ByName("nanos")).Int())
}

func durationOf(m protoreflect.Message) (time.Duration, error) {
	d, ok := m.Interface().(*durationpb.Duration)
	if !ok {
		s, n := secondsNanos(m)
		d = &durationpb.Duration{Seconds: s, Nanos: n}
	}
	return d.AsDuration(), d.CheckValid()
}

func pbDuration(d interface {
	GetSeconds() int64
	GetNanos() int32
}) time.Duration {
	return time.Duration(d.GetSeconds())*time.Second + time.Duration(d.GetNanos())
}

func (c *checker) duration(name string, m protoreflect.Message, r *validate.DurationRules) {
	if m == nil {
		if r.GetRequired() {
			c.add(name, "value is required", nil, false)
		}
		return
	}
	if r.Const == nil && r.Lt == nil && r.Lte == nil && r.Gt == nil && r.Gte == nil && len(r.In) == 0 && len(r.NotIn) == 0 {
		return
	}
	d, err := durationOf(m)
	if err != nil {
		c.add(name, "value is not a valid duration", err, false)
		return
	}
	if r.Const != nil && d != pbDuration(r.Const) {
		c.add(name, "value must equal "+pbDuration(r.Const).String(), nil, false)
	}
	opt := func(p interface {
		GetSeconds() int64
		GetNanos() int32
	}, ok bool) *time.Duration {
		if !ok {
			return nil
		}
		v := pbDuration(p)
		return &v
	}
	if reason := ltgt(d, opt(r.Lt, r.Lt != nil), opt(r.Lte, r.Lte != nil), opt(r.Gt, r.Gt != nil), opt(r.Gte, r.Gte != nil), func(d time.Duration) string { return d.String() }); reason != "" {
		c.add(name, reason, nil, false)
	}
	var in, notIn []time.Duration
	for _, x := range r.In {
		in = append(in, pbDuration(x))
	}
	for _, x := range r.NotIn {
		notIn = append(notIn, pbDuration(x))
	}
	if len(in) > 0 && !slices.Contains(in, d) {
		c.add(name, fmt.Sprintf("value must be in list %v", r.In), nil, false)
	} else if len(in) == 0 && len(notIn) > 0 && slices.Contains(notIn, d) {
		c.add(name, fmt.Sprintf("value must not be in list %v", r.NotIn), nil, false)
	}
}

func (c *checker) timestamp(name string, m protoreflect.Message, r *validate.TimestampRules) {
	if m == nil {
		if r.GetRequired() {
			c.add(name, "value is required", nil, false)
		}
		return
	}
	if r.Const == nil && r.Lt == nil && r.Lte == nil && r.Gt == nil && r.Gte == nil && !r.GetLtNow() && !r.GetGtNow() && r.Within == nil {
		return
	}
	pts, ok := m.Interface().(*timestamppb.Timestamp)
	if !ok {
		s, n := secondsNanos(m)
		pts = &timestamppb.Timestamp{Seconds: s, Nanos: n}
	}
	if err := pts.CheckValid(); err != nil {
		c.add(name, "value is not a valid timestamp", err, false)
		return
	}
	ts := pts.AsTime()
	at := func(p interface {
		GetSeconds() int64
		GetNanos() int32
	}) time.Time {
		return time.Unix(p.GetSeconds(), int64(p.GetNanos()))
	}
	if r.Const != nil && !ts.Equal(at(r.Const)) {
		c.add(name, "value must equal "+at(r.Const).String(), nil, false)
	}
	opt := func(p interface {
		GetSeconds() int64
		GetNanos() int32
	}, ok bool) *int64 {
		if !ok {
			return nil
		}
		v := at(p).UnixNano()
		return &v
	}
	if reason := ltgt(ts.UnixNano(), opt(r.Lt, r.Lt != nil), opt(r.Lte, r.Lte != nil), opt(r.Gt, r.Gt != nil), opt(r.Gte, r.Gte != nil), func(ns int64) string { return time.Unix(0, ns).String() }); reason != "" {
		c.add(name, reason, nil, false)
	}
	now := time.Now()
	switch {
	case r.GetLtNow() && r.Within == nil && !ts.Before(now):
		c.add(name, "value must be less than now", nil, false)
	case r.GetGtNow() && r.Within == nil && !ts.After(now):
		c.add(name, "value must be greater than now", nil, false)
	case r.Within != nil:
		w := pbDuration(r.Within)
		switch {
		case r.GetLtNow() && (ts.After(now) || ts.Before(now.Add(-w))):
			c.add(name, "value must be less than now within "+w.String(), nil, false)
		case r.GetGtNow() && (ts.Before(now) || ts.After(now.Add(w))):
			c.add(name, "value must be greater than now within "+w.String(), nil, false)
		case !r.GetLtNow() && !r.GetGtNow() && (ts.Before(now.Add(-w)) || ts.After(now.Add(w))):
			c.add(name, "value must be within "+w.String()+" of now", nil, false)
		}
	}
}

// ltgt applies the lt, lte, gt and gte rules (nil: unset) as
// protoc-gen-validate's ltgt template does, a range when an upper and a
// lower bound are both set, and returns the violation's reason or "".
func ltgt[T int64 | uint64 | float64 | time.Duration](v T, lt, lte, gt, gte *T, str func(T) string) string {
	switch {
	case lt != nil && gt != nil:
		if *lt > *gt {
			if v <= *gt || v >= *lt {
				return "value must be inside range (" + str(*gt) + ", " + str(*lt) + ")"
			}
		} else if v >= *lt && v <= *gt {
			return "value must be outside range [" + str(*lt) + ", " + str(*gt) + "]"
		}
	case lt != nil && gte != nil:
		if *lt > *gte {
			if v < *gte || v >= *lt {
				return "value must be inside range [" + str(*gte) + ", " + str(*lt) + ")"
			}
		} else if v >= *lt && v < *gte {
			return "value must be outside range [" + str(*lt) + ", " + str(*gte) + ")"
		}
	case lt != nil:
		if v >= *lt {
			return "value must be less than " + str(*lt)
		}
	case lte != nil && gt != nil:
		if *lte > *gt {
			if v <= *gt || v > *lte {
				return "value must be inside range (" + str(*gt) + ", " + str(*lte) + "]"
			}
		} else if v > *lte && v <= *gt {
			return "value must be outside range (" + str(*lte) + ", " + str(*gt) + "]"
		}
	case lte != nil && gte != nil:
		if *lte > *gte {
			if v < *gte || v > *lte {
				return "value must be inside range [" + str(*gte) + ", " + str(*lte) + "]"
			}
		} else if v > *lte && v < *gte {
			return "value must be outside range (" + str(*lte) + ", " + str(*gte) + ")"
		}
	case lte != nil:
		if v > *lte {
			return "value must be less than or equal to " + str(*lte)
		}
	case gt != nil:
		if v <= *gt {
			return "value must be greater than " + str(*gt)
		}
	case gte != nil:
		if v < *gte {
			return "value must be greater than or equal to " + str(*gte)
		}
	}
	return ""
}
