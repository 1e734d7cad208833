package tracing

import (
	"fmt"
	"math"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ratioSampler is the root sampler of a Tracer: the OTel SDK's
// TraceIDRatioBased with a ratio that can change while spans start.
type ratioSampler struct {
	cur atomic.Pointer[ratio]
}

type ratio struct {
	percent float64
	s       sdktrace.Sampler
}

func newRatioSampler(percent float64) *ratioSampler {
	r := &ratioSampler{}
	r.set(percent)
	return r
}

// set makes new traces sampled with percent (0-100, checked by the
// caller).
func (r *ratioSampler) set(percent float64) {
	if c := r.cur.Load(); c != nil && c.percent == percent {
		return
	}
	r.cur.Store(&ratio{percent: percent, s: sdktrace.TraceIDRatioBased(percent / 100)})
}

func (r *ratioSampler) percent() float64 { return r.cur.Load().percent }

func (r *ratioSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return r.cur.Load().s.ShouldSample(p)
}

func (r *ratioSampler) Description() string {
	return fmt.Sprintf("FedmeshRatio{%g%%}", r.percent())
}

// NewSampler returns the parent-based sampler of a tracer whose new traces
// are sampled at percent, and the function that changes that percentage.
func NewSampler(percent float64) (sdktrace.Sampler, func(float64) error, error) {
	if err := CheckPercent(percent); err != nil {
		return nil, nil, err
	}
	r := newRatioSampler(percent)
	set := func(p float64) error {
		if err := CheckPercent(p); err != nil {
			return err
		}
		r.set(p)
		return nil
	}
	return sdktrace.ParentBased(r), set, nil
}

// CheckPercent reports an error unless p is a sampling percentage (0-100).
func CheckPercent(p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return fmt.Errorf("sampling percentage %v is not between 0 and 100", p)
	}
	return nil
}
