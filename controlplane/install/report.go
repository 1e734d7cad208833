package install

import (
	"fmt"
	"io"
)

// Status is a check's outcome.
type Status string

const (
	// Pass: the check holds.
	Pass Status = "pass"
	// Fail: it does not; the Check's Hint says what to do.
	Fail Status = "fail"
	// Skip: it could not be checked here (not installed yet, no admin
	// address); the Hint says how to check it.
	Skip Status = "skip"
)

// Check is one line of a Report.
type Check struct {
	// Name is the check's stable name, e.g. "crds-established".
	Name string `json:"name"`
	// Status is pass, fail or skip.
	Status Status `json:"status"`
	// Message says what was found.
	Message string `json:"message"`
	// Hint says what to do about a failure or a skip.
	Hint string `json:"hint,omitempty"`
}

// Report is the result of Run.
type Report struct {
	// Phase is "pre-install" or "post-install".
	Phase string `json:"phase"`
	// Checks are in the order they ran.
	Checks []Check `json:"checks"`
}

// Failed says whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

func (r *Report) add(name string, s Status, msg, hint string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: s, Message: msg, Hint: hint})
}

// WriteText writes r as a pass/fail list, a hint under each failure or
// skip, and a summary line.
func (r Report) WriteText(w io.Writer) error {
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		if _, err := fmt.Fprintf(w, "[%s] %s: %s\n", c.Status, c.Name, c.Message); err != nil {
			return err
		}
		if c.Hint != "" && c.Status != Pass {
			if _, err := fmt.Fprintf(w, "       hint: %s\n", c.Hint); err != nil {
				return err
			}
		}
	}
	verdict := "all checks passed"
	if r.Failed() {
		verdict = "some checks failed"
	}
	_, err := fmt.Fprintf(w, "%s: %s (%d passed, %d failed, %d skipped)\n", r.Phase, verdict, counts[Pass], counts[Fail], counts[Skip])
	return err
}
