package xdsresource

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// ValidateDeep runs Envoy's validation rules (the generated ValidateAll)
// on m and on every message packed in an Any inside it, such as a
// filter's typed_config, which ValidateAll does not open. It returns
// every violation found, each naming the message type.
func ValidateDeep(m proto.Message) error {
	var errs []error
	var check func(proto.Message)
	var walk func(protoreflect.Message)
	check = func(m proto.Message) {
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%T: %w", m, err))
			}
		}
		walk(m.ProtoReflect())
	}
	walk = func(msg protoreflect.Message) {
		if a, ok := msg.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("unpack %s: %w", a.TypeUrl, err))
				return
			}
			check(inner)
			return
		}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	check(m)
	return errors.Join(errs...)
}
