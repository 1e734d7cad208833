package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Files of a rotation in a cluster CA directory.
const (
	// RotationFile records the rotation in progress and the retired
	// intermediates (JSON, RotationState).
	RotationFile = "rotation.json"
	// RetiredDir holds the certificates (never the keys) of retired
	// intermediates while their window runs.
	RetiredDir = "retired"
	// DefaultRotationWindow is how long an old CA stays trusted after the
	// switch: longer than DefaultWorkloadTTL, so every leaf it signed has
	// been renewed (at half life) or has expired.
	DefaultRotationWindow = DefaultWorkloadTTL + time.Hour
)

// Phases of a root rotation, in order. A root rotation is run phase by
// phase in every cluster of the federation: add everywhere, then switch
// everywhere, then, after the window, remove everywhere.
const (
	// PhaseAdd puts the new root into the cluster's trust bundle beside
	// the old one; nothing is signed by it yet.
	PhaseAdd = "add"
	// PhaseSwitch signs a new intermediate for the cluster under the new
	// root; the control plane issues every new leaf from it.
	PhaseSwitch = "switch"
	// PhaseRemove takes the old root out of the trust bundle, once the
	// window since the switch has passed.
	PhaseRemove = "remove"
)

// ErrRotation is wrapped by the refusals of a rotation step that does not
// fit the state of the CA directory (a phase out of order, a window not
// yet over).
var ErrRotation = errors.New("rotation refused")

// RotationState is what rotation.json holds.
type RotationState struct {
	// Root is the root rotation in progress, nil when there is none.
	Root *RootRotation `json:"root,omitempty"`
	// Retired are earlier intermediates of this cluster whose leaves may
	// still be in use, oldest first.
	Retired []RetiredCA `json:"retired,omitempty"`
}

// RootRotation is a root rotation in progress in one cluster.
type RootRotation struct {
	// Phase is the last phase done: PhaseAdd or PhaseSwitch.
	Phase string `json:"phase"`
	// OldRoots are the SHA-256 fingerprints of the roots being replaced
	// (the bundle before PhaseAdd).
	OldRoots []string `json:"oldRoots"`
	// NewRoot is the SHA-256 fingerprint of the new root.
	NewRoot string `json:"newRoot"`
	// AddedAt is when PhaseAdd ran.
	AddedAt time.Time `json:"addedAt"`
	// SwitchedAt is when PhaseSwitch ran; zero before.
	SwitchedAt time.Time `json:"switchedAt,omitzero"`
	// Window is how long after SwitchedAt the old roots stay trusted.
	Window Duration `json:"window,omitzero"`
}

// RetiredCA is an intermediate replaced by a rotation.
type RetiredCA struct {
	// File is its certificate's name in RetiredDir.
	File string `json:"file"`
	// SHA256 is the certificate's fingerprint.
	SHA256 string `json:"sha256"`
	// RetiredAt is when it stopped signing.
	RetiredAt time.Time `json:"retiredAt"`
	// Until is the end of its window: then every leaf it signed has been
	// renewed or has expired.
	Until time.Time `json:"until"`
}

// Duration is a time.Duration written as a string ("25h0m0s") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// maxRotationBytes bounds rotation.json.
const maxRotationBytes = 1 << 20

// ReadRotation reads dir/rotation.json; a missing file is the zero state.
func ReadRotation(dir string) (*RotationState, error) {
	data, err := os.ReadFile(filepath.Join(dir, RotationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &RotationState{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseRotation(data)
}

// ParseRotation reads the JSON of a rotation.json and checks it.
func ParseRotation(data []byte) (*RotationState, error) {
	if len(data) > maxRotationBytes {
		return nil, fmt.Errorf("%s holds %d bytes, at most %d", RotationFile, len(data), maxRotationBytes)
	}
	var rs RotationState
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w", RotationFile, err)
	}
	if r := rs.Root; r != nil {
		if r.Phase != PhaseAdd && r.Phase != PhaseSwitch {
			return nil, fmt.Errorf("%s: root rotation phase %q, want %q or %q", RotationFile, r.Phase, PhaseAdd, PhaseSwitch)
		}
		if r.NewRoot == "" || len(r.OldRoots) == 0 {
			return nil, fmt.Errorf("%s: root rotation without its old and new roots", RotationFile)
		}
		if r.Window < 0 {
			return nil, fmt.Errorf("%s: negative window %s", RotationFile, time.Duration(r.Window))
		}
	}
	for _, c := range rs.Retired {
		if c.File == "" || c.File != filepath.Base(c.File) || c.File[0] == '.' {
			return nil, fmt.Errorf("%s: retired CA file %q is not a plain file name", RotationFile, c.File)
		}
	}
	return &rs, nil
}

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Step is one rotation step to plan against the state of a CA directory.
type Step struct {
	// Kind is "intermediate" or "root".
	Kind string
	// Phase is the root rotation's phase (PhaseAdd, PhaseSwitch,
	// PhaseRemove); empty for an intermediate rotation.
	Phase string
	// NewRoot is the fingerprint of the new root (root add and switch)
	// or of the root that signs the new intermediate (intermediate).
	NewRoot string
	// Force skips the wait for the window in PhaseRemove.
	Force bool
}

// Check tells whether step may run on a directory in state rs at time
// now, whose bundle holds the roots with fingerprints bundle. It is pure:
// the rules of the rotation in one place.
func Check(rs *RotationState, bundle []string, step Step, now time.Time) error {
	r := rs.Root
	switch step.Kind {
	case "intermediate":
		if r != nil {
			return fmt.Errorf("%w: a root rotation is in phase %q; finish it (phase %q) before rotating the intermediate", ErrRotation, r.Phase, PhaseRemove)
		}
		if !slices.Contains(bundle, step.NewRoot) {
			return fmt.Errorf("%w: the root %s… is not in the cluster's trust bundle", ErrRotation, step.NewRoot[:16])
		}
		return nil
	case "root":
	default:
		return fmt.Errorf("%w: unknown rotation %q, want intermediate or root", ErrRotation, step.Kind)
	}
	switch step.Phase {
	case PhaseAdd:
		switch {
		case r == nil && slices.Contains(bundle, step.NewRoot):
			return fmt.Errorf("%w: the new root %s… is already in the trust bundle", ErrRotation, step.NewRoot[:16])
		case r == nil:
			return nil
		case r.NewRoot != step.NewRoot:
			return fmt.Errorf("%w: a rotation to root %s… is in progress (phase %q)", ErrRotation, r.NewRoot[:16], r.Phase)
		case r.Phase != PhaseAdd:
			return fmt.Errorf("%w: phase %q is done already, next is %q", ErrRotation, r.Phase, PhaseRemove)
		}
		return nil // added already: nothing to do again
	case PhaseSwitch:
		switch {
		case r == nil:
			return fmt.Errorf("%w: no root rotation in progress: run phase %q in every cluster first", ErrRotation, PhaseAdd)
		case r.NewRoot != step.NewRoot:
			return fmt.Errorf("%w: the rotation in progress is to root %s…, not %s…", ErrRotation, r.NewRoot[:16], step.NewRoot[:16])
		case r.Phase == PhaseSwitch:
			return fmt.Errorf("%w: switched already at %s; next is %q", ErrRotation, r.SwitchedAt.UTC().Format(time.RFC3339), PhaseRemove)
		}
		return nil
	case PhaseRemove:
		switch {
		case r == nil:
			return fmt.Errorf("%w: no root rotation in progress", ErrRotation)
		case r.Phase != PhaseSwitch:
			return fmt.Errorf("%w: phase %q comes first", ErrRotation, PhaseSwitch)
		}
		if end := r.SwitchedAt.Add(time.Duration(r.Window)); now.Before(end) && !step.Force {
			return fmt.Errorf("%w: the window runs until %s (%s from now): leaves of the old root may still be in use; wait, or --force once every leaf is renewed",
				ErrRotation, end.UTC().Format(time.RFC3339), end.Sub(now).Round(time.Second))
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown phase %q, want %s, %s or %s", ErrRotation, step.Phase, PhaseAdd, PhaseSwitch, PhaseRemove)
	}
}

// caDir is a cluster CA directory read for a rotation.
type caDir struct {
	dir   string
	cert  *x509.Certificate
	roots []*x509.Certificate
	state *RotationState
}

func openCADir(dir string) (*caDir, error) {
	m, err := readCADir(dir)
	if err != nil {
		return nil, err
	}
	rs, err := ReadRotation(dir)
	if err != nil {
		return nil, err
	}
	return &caDir{dir: dir, cert: m.cert, roots: m.roots, state: rs}, nil
}

func (d *caDir) fingerprints() []string {
	out := make([]string, len(d.roots))
	for i, r := range d.roots {
		out[i] = Fingerprint(r)
	}
	return out
}

func (d *caDir) cluster() string { return d.cert.Subject.OrganizationalUnit[0] }

// RotateIntermediate replaces the intermediate of the cluster CA in
// caDir by a new one signed by root (which must be in the cluster's
// bundle), valid ttl (DefaultClusterCATTL when 0). The old certificate is
// kept in retired/ for window (its key is deleted: it signs nothing any
// more); leaves it signed stay valid, as they chain to the same root, and
// are renewed by the control plane from the new intermediate as soon as
// it reloads the directory. The token secret is kept.
func RotateIntermediate(root *Root, caDir string, ttl, window time.Duration) error {
	d, err := openCADir(caDir)
	if err != nil {
		return err
	}
	if err := Check(d.state, d.fingerprints(), Step{Kind: "intermediate", NewRoot: Fingerprint(root.cert)}, root.now()); err != nil {
		return err
	}
	return d.switchIntermediate(root, ttl, window)
}

// switchIntermediate signs a new intermediate under root and puts it in
// place, retiring the current one for window.
func (d *caDir) switchIntermediate(root *Root, ttl, window time.Duration) error {
	if window <= 0 {
		return fmt.Errorf("%w: window %s must be positive (longer than the leaf TTL)", ErrRotation, window)
	}
	if root.td.Name() != trustDomainName(d.cert) {
		return fmt.Errorf("%w: the root is for trust domain %q, the cluster CA for %q", ErrRotation, root.td.Name(), trustDomainName(d.cert))
	}
	certPEM, keyPEM, err := root.signIntermediate(d.cluster(), ttl)
	if err != nil {
		return err
	}
	now := root.now()
	if err := os.MkdirAll(filepath.Join(d.dir, RetiredDir), 0o700); err != nil {
		return err
	}
	name := "ca-" + d.cert.SerialNumber.Text(16) + ".crt"
	if err := replaceFile(filepath.Join(d.dir, RetiredDir, name), EncodeCertsPEM(d.cert), 0o644); err != nil {
		return err
	}
	d.state.Retired = append(d.state.Retired, RetiredCA{File: name, SHA256: Fingerprint(d.cert), RetiredAt: now, Until: now.Add(window)})
	d.state.Retired = dropExpired(d.state.Retired, now)
	// The new key is written before the certificate: a control plane that
	// reads in between finds a key that does not match ca.crt and keeps
	// its CA until the next read.
	if err := replaceFile(filepath.Join(d.dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(d.dir, CACertFile), certPEM, 0o644); err != nil {
		return err
	}
	return d.writeState()
}

// dropExpired forgets retired intermediates whose window ended.
func dropExpired(rs []RetiredCA, now time.Time) []RetiredCA {
	return slices.DeleteFunc(rs, func(r RetiredCA) bool { return !now.Before(r.Until) })
}

func (d *caDir) writeState() error {
	data, err := json.MarshalIndent(d.state, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(filepath.Join(d.dir, RotationFile), append(data, '\n'), 0o644)
}

func (d *caDir) writeBundle(roots []*x509.Certificate) error {
	d.roots = roots
	return replaceFile(filepath.Join(d.dir, BundleFile), EncodeCertsPEM(roots...), 0o644)
}

// RotateRoot runs one phase of a root rotation on the cluster CA in
// caDir (see PhaseAdd, PhaseSwitch, PhaseRemove). newRoot is the new
// root (from `fedmesh ca init` with the same trust domain) for add and
// switch; remove needs none. ttl is the new intermediate's validity
// (switch), window how long the old root stays trusted after the switch,
// force skips the wait for the window in remove. now is the time of the
// step.
func RotateRoot(phase string, newRoot *Root, caDir string, ttl, window time.Duration, force bool, now time.Time) error {
	d, err := openCADir(caDir)
	if err != nil {
		return err
	}
	step := Step{Kind: "root", Phase: phase, Force: force}
	if phase != PhaseRemove {
		if newRoot == nil {
			return fmt.Errorf("%w: phase %q needs the new root", ErrRotation, phase)
		}
		step.NewRoot = Fingerprint(newRoot.cert)
		if newRoot.td.Name() != trustDomainName(d.cert) {
			return fmt.Errorf("%w: the new root is for trust domain %q, the federation's is %q", ErrRotation, newRoot.td.Name(), trustDomainName(d.cert))
		}
	}
	if err := Check(d.state, d.fingerprints(), step, now); err != nil {
		return err
	}
	switch phase {
	case PhaseAdd:
		if d.state.Root != nil {
			return nil // added already
		}
		d.state.Root = &RootRotation{Phase: PhaseAdd, OldRoots: d.fingerprints(), NewRoot: step.NewRoot, AddedAt: now}
		if err := d.writeState(); err != nil {
			return err
		}
		return d.writeBundle(append(slices.Clone(d.roots), newRoot.cert))
	case PhaseSwitch:
		if !slices.Contains(d.fingerprints(), step.NewRoot) {
			return fmt.Errorf("%w: the new root is not in %s; run phase %q again", ErrRotation, BundleFile, PhaseAdd)
		}
		d.state.Root.Phase, d.state.Root.SwitchedAt, d.state.Root.Window = PhaseSwitch, now, Duration(window)
		return d.switchIntermediate(newRoot, ttl, window)
	default: // PhaseRemove
		old := d.state.Root.OldRoots
		keep := slices.DeleteFunc(slices.Clone(d.roots), func(c *x509.Certificate) bool { return slices.Contains(old, Fingerprint(c)) })
		if len(keep) == 0 {
			return fmt.Errorf("%w: removing the old roots would leave %s empty", ErrRotation, BundleFile)
		}
		pool := x509.NewCertPool()
		for _, r := range keep {
			pool.AddCert(r)
		}
		if _, err := d.cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("%w: the cluster CA does not chain to the new root: %w", ErrRotation, err)
		}
		// Intermediates of the old roots no longer verify: forget them.
		d.state.Retired = slices.DeleteFunc(d.state.Retired, func(r RetiredCA) bool {
			c, err := loadCert(filepath.Join(d.dir, RetiredDir, r.File))
			if err != nil {
				return true
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err != nil
		})
		d.state.Root = nil
		if err := d.writeBundle(keep); err != nil {
			return err
		}
		return d.writeState()
	}
}

func trustDomainName(c *x509.Certificate) string {
	td, err := trustDomainOf(c)
	if err != nil {
		return ""
	}
	return td.Name()
}

// signIntermediate signs a new intermediate for cluster, as IssueCluster
// does, without drawing a new token secret.
func (r *Root) signIntermediate(cluster string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	if ttl == 0 {
		ttl = DefaultClusterCATTL
	}
	if ttl < 0 {
		return nil, nil, fmt.Errorf("cluster CA ttl %s is negative", ttl)
	}
	now := r.now()
	notAfter := now.Add(ttl)
	if notAfter.After(r.cert.NotAfter) {
		notAfter = r.cert.NotAfter
	}
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			Organization:       []string{"fedmesh"},
			OrganizationalUnit: []string{cluster},
			CommonName:         "fedmesh cluster CA " + cluster,
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{r.td.ID().URL()},
		PermittedURIDomains:   []string{r.td.Name()},
	}
	cert, err := create(tmpl, r.cert, key.Public(), r.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return EncodeCertsPEM(cert), keyPEM, nil
}
