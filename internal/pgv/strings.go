package pgv

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/envoyproxy/protoc-gen-validate/validate"
)

// patterns caches compiled string patterns.
var patterns sync.Map // string -> *regexp.Regexp

func pattern(p string) *regexp.Regexp {
	if re, ok := patterns.Load(p); ok {
		return re.(*regexp.Regexp)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		// protoc-gen-validate compiles patterns at package init and
		// would not have generated this; match nothing.
		re = regexp.MustCompile(`[^\x00-\x{10FFFF}]`)
	}
	v, _ := patterns.LoadOrStore(p, re)
	return v.(*regexp.Regexp)
}

// The header regexes of protoc-gen-validate's well_known_regex rule.
const (
	headerNameStrict  = "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$"
	headerValueStrict = "^[^\u0000-\u0008\u000A-\u001F\u007F]*$"
	headerLoose       = "^[^\u0000\u000A\u000D]*$"
)

func (c *checker) str(name, s string, r *validate.StringRules, key bool) {
	if r.GetIgnoreEmpty() && s == "" {
		return
	}
	add := func(reason string, cause error) { c.add(name, reason, cause, key) }
	if r.Const != nil && s != r.GetConst() {
		add(fmt.Sprintf("value must equal %v", r.GetConst()), nil)
	}
	if len(r.In) > 0 && !slices.Contains(r.In, s) {
		add(fmt.Sprintf("value must be in list %v", r.In), nil)
	} else if len(r.In) == 0 && len(r.NotIn) > 0 && slices.Contains(r.NotIn, s) {
		add(fmt.Sprintf("value must not be in list %v", r.NotIn), nil)
	}
	runes := uint64(utf8.RuneCountInString(s))
	switch {
	case r.Len != nil:
		if runes != r.GetLen() {
			add(fmt.Sprintf("value length must be %d runes", r.GetLen()), nil)
		}
	case r.MinLen != nil && r.MaxLen != nil && r.GetMinLen() == r.GetMaxLen():
		if runes != r.GetMinLen() {
			add(fmt.Sprintf("value length must be %d runes", r.GetMinLen()), nil)
		}
	case r.MinLen != nil && r.MaxLen != nil:
		if runes < r.GetMinLen() || runes > r.GetMaxLen() {
			add(fmt.Sprintf("value length must be between %d and %d runes, inclusive", r.GetMinLen(), r.GetMaxLen()), nil)
		}
	case r.MinLen != nil:
		if runes < r.GetMinLen() {
			add(fmt.Sprintf("value length must be at least %d runes", r.GetMinLen()), nil)
		}
	case r.MaxLen != nil:
		if runes > r.GetMaxLen() {
			add(fmt.Sprintf("value length must be at most %d runes", r.GetMaxLen()), nil)
		}
	}
	c.byteLen(name, uint64(len(s)), r.LenBytes, r.MinBytes, r.MaxBytes, key)
	if r.Prefix != nil && r.GetPrefix() != "" && !strings.HasPrefix(s, r.GetPrefix()) {
		add(fmt.Sprintf("value does not have prefix %q", r.GetPrefix()), nil)
	}
	if r.Suffix != nil && r.GetSuffix() != "" && !strings.HasSuffix(s, r.GetSuffix()) {
		add(fmt.Sprintf("value does not have suffix %q", r.GetSuffix()), nil)
	}
	if r.Contains != nil && r.GetContains() != "" && !strings.Contains(s, r.GetContains()) {
		add(fmt.Sprintf("value does not contain substring %q", r.GetContains()), nil)
	}
	if r.NotContains != nil && r.GetNotContains() != "" && strings.Contains(s, r.GetNotContains()) {
		add(fmt.Sprintf("value contains substring %q", r.GetNotContains()), nil)
	}
	switch {
	case r.GetIp():
		if net.ParseIP(s) == nil {
			add("value must be a valid IP address", nil)
		}
	case r.GetIpv4():
		if ip := net.ParseIP(s); ip == nil || ip.To4() == nil {
			add("value must be a valid IPv4 address", nil)
		}
	case r.GetIpv6():
		if ip := net.ParseIP(s); ip == nil || ip.To4() != nil {
			add("value must be a valid IPv6 address", nil)
		}
	case r.GetEmail():
		if err := validateEmail(s); err != nil {
			add("value must be a valid email address", err)
		}
	case r.GetHostname():
		if err := validateHostname(s); err != nil {
			add("value must be a valid hostname", err)
		}
	case r.GetAddress():
		if validateHostname(s) != nil && net.ParseIP(s) == nil {
			add("value must be a valid hostname, or ip address", nil)
		}
	case r.GetUri():
		if u, err := url.Parse(s); err != nil {
			add("value must be a valid URI", err)
		} else if !u.IsAbs() {
			add("value must be absolute", nil)
		}
	case r.GetUriRef():
		if _, err := url.Parse(s); err != nil {
			add("value must be a valid URI", err)
		}
	case r.GetUuid():
		if !uuidPattern.MatchString(s) {
			add("value must be a valid UUID", errors.New("invalid uuid format"))
		}
	case r.GetWellKnownRegex() != validate.KnownRegex_UNKNOWN:
		p := headerLoose
		if r.Strict == nil || r.GetStrict() {
			switch r.GetWellKnownRegex() {
			case validate.KnownRegex_HTTP_HEADER_NAME:
				p = headerNameStrict
			case validate.KnownRegex_HTTP_HEADER_VALUE:
				p = headerValueStrict
			}
		}
		if !pattern(p).MatchString(s) {
			add(fmt.Sprintf("value does not match regex pattern %q", p), nil)
		}
	}
	if r.Pattern != nil && r.GetPattern() != "" && !pattern(r.GetPattern()).MatchString(s) {
		add(fmt.Sprintf("value does not match regex pattern %q", r.GetPattern()), nil)
	}
}

var uuidPattern = regexp.MustCompile("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

func (c *checker) byteLen(name string, n uint64, exact, minb, maxb *uint64, key bool) {
	switch {
	case exact != nil:
		if n != *exact {
			c.add(name, fmt.Sprintf("value length must be %d bytes", *exact), nil, key)
		}
	case minb != nil && maxb != nil && *minb == *maxb:
		if n != *minb {
			c.add(name, fmt.Sprintf("value length must be %d bytes", *minb), nil, key)
		}
	case minb != nil && maxb != nil:
		if n < *minb || n > *maxb {
			c.add(name, fmt.Sprintf("value length must be between %d and %d bytes, inclusive", *minb, *maxb), nil, key)
		}
	case minb != nil:
		if n < *minb {
			c.add(name, fmt.Sprintf("value length must be at least %d bytes", *minb), nil, key)
		}
	case maxb != nil:
		if n > *maxb {
			c.add(name, fmt.Sprintf("value length must be at most %d bytes", *maxb), nil, key)
		}
	}
}

func validateHostname(host string) error {
	s := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(host) > 253 {
		return errors.New("hostname cannot exceed 253 characters")
	}
	for _, part := range strings.Split(s, ".") {
		if l := len(part); l == 0 || l > 63 {
			return errors.New("hostname part must be non-empty and cannot exceed 63 characters")
		}
		if part[0] == '-' {
			return errors.New("hostname parts cannot begin with hyphens")
		}
		if part[len(part)-1] == '-' {
			return errors.New("hostname parts cannot end with hyphens")
		}
		for _, r := range part {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Errorf("hostname parts can only contain alphanumeric characters or hyphens, got %q", string(r))
			}
		}
	}
	return nil
}

func validateEmail(addr string) error {
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return err
	}
	addr = a.Address
	if len(addr) > 254 {
		return errors.New("email addresses cannot exceed 254 characters")
	}
	parts := strings.SplitN(addr, "@", 2)
	if len(parts[0]) > 64 {
		return errors.New("email address local phrase cannot exceed 64 characters")
	}
	return validateHostname(parts[1])
}
