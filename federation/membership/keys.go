package membership

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// KeyReport is the answer of a keyring operation sent to every member
// (serf's key manager): how many members answered and which keys they
// hold. Keys are base64 (standard encoding), as the CLI shows them.
type KeyReport struct {
	// NumNodes is the number of members serf knows.
	NumNodes int `json:"numNodes"`
	// NumResp is the number of members that answered.
	NumResp int `json:"numResp"`
	// NumErr is the number of members that answered with an error.
	NumErr int `json:"numErr"`
	// Messages holds the error of each member that failed, by name.
	Messages map[string]string `json:"messages,omitempty"`
	// Keys counts, per key, the members holding it (list only).
	Keys map[string]int `json:"keys,omitempty"`
	// PrimaryKeys counts, per key, the members using it as primary (list
	// only).
	PrimaryKeys map[string]int `json:"primaryKeys,omitempty"`
}

func reportOf(r *serf.KeyResponse) KeyReport {
	if r == nil {
		return KeyReport{}
	}
	return KeyReport{NumNodes: r.NumNodes, NumResp: r.NumResp, NumErr: r.NumErr,
		Messages: r.Messages, Keys: r.Keys, PrimaryKeys: r.PrimaryKeys}
}

// ParseKey decodes a gossip key given as base64 (standard encoding) and
// checks its length (16, 24 or 32 bytes).
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	return k, nil
}

// EncodeKey renders a gossip key as base64 (standard encoding).
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// NewKey returns a random 32-byte gossip key (AES-256).
func NewKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails
	return k
}

func (m *Membership) keyOp(op, key string) (KeyReport, error) {
	if m.isClosed() {
		return KeyReport{}, ErrShutdown
	}
	if op != "list" {
		if _, err := ParseKey(key); err != nil {
			return KeyReport{}, err
		}
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	km := m.serf.KeyManager()
	var r *serf.KeyResponse
	var err error
	switch op {
	case "install":
		r, err = km.InstallKey(key)
	case "use":
		r, err = km.UseKey(key)
	case "remove":
		r, err = km.RemoveKey(key)
	default:
		r, err = km.ListKeys()
	}
	if err != nil {
		return reportOf(r), fmt.Errorf("%s key: %w", op, err)
	}
	return reportOf(r), nil
}

// ListKeys asks every member for its keyring.
func (m *Membership) ListKeys() (KeyReport, error) { return m.keyOp("list", "") }

// InstallKey adds a key (base64) to every member's keyring.
func (m *Membership) InstallKey(key string) (KeyReport, error) { return m.keyOp("install", key) }

// UseKey makes an installed key (base64) every member's primary key.
func (m *Membership) UseKey(key string) (KeyReport, error) { return m.keyOp("use", key) }

// RemoveKey removes a key (base64) from every member's keyring; the
// primary key cannot be removed.
func (m *Membership) RemoveKey(key string) (KeyReport, error) { return m.keyOp("remove", key) }

// LocalKeys returns this member's keyring, primary key first.
func (m *Membership) LocalKeys() [][]byte { return m.keyring.GetKeys() }

// AdoptKeys makes keys (primary first) this member's keyring before it
// joins a federation with a join token. A member that already uses that
// primary key is left as it is. A member alone in its own federation
// switches to the keys and drops its old ones. A member that already
// gossips with others under another primary key gets ErrAlreadyFederated:
// rotate that federation's keys with InstallKey and UseKey instead.
func (m *Membership) AdoptKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errors.New("adopt keys: no keys given")
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("adopt keys: key %d: %w", i, err)
		}
	}
	if m.isClosed() {
		return ErrShutdown
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if bytes.Equal(m.keyring.GetPrimaryKey(), keys[0]) {
		return nil
	}
	others := 0
	for _, sm := range m.serf.Members() {
		if sm.Name != m.name && (sm.Status == serf.StatusAlive || sm.Status == serf.StatusLeaving) {
			others++
		}
	}
	if others > 0 {
		return fmt.Errorf("%w: %d other members use the current key", ErrAlreadyFederated, others)
	}
	for _, k := range keys {
		if err := m.keyring.AddKey(k); err != nil {
			return fmt.Errorf("adopt keys: %w", err)
		}
	}
	if err := m.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("adopt keys: %w", err)
	}
	for _, old := range m.keyring.GetKeys() {
		if !containsKey(keys, old) {
			if err := m.keyring.RemoveKey(old); err != nil {
				return fmt.Errorf("adopt keys: drop old key: %w", err)
			}
		}
	}
	if m.cfg.KeyringFile != "" {
		if err := writeKeyringFile(m.cfg.KeyringFile, m.keyring.GetKeys()); err != nil {
			return err
		}
	}
	m.log.Info("adopted the federation's gossip keys", "keys", len(keys))
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// loadKeys returns the keyring to start with: the keyring file when it
// exists, else Config.Keys, else one new random key.
func loadKeys(cfg Config) ([][]byte, error) {
	if cfg.KeyringFile != "" {
		keys, err := readKeyringFile(cfg.KeyringFile)
		if err == nil {
			return keys, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(cfg.Keys) > 0 {
		return cfg.Keys, nil
	}
	return [][]byte{NewKey()}, nil
}

// readKeyringFile reads serf's keyring file format: a JSON list of base64
// keys, primary first.
func readKeyringFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring file: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(b, &encoded); err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("keyring file %s holds no keys", path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, e := range encoded {
		k, err := ParseKey(e)
		if err != nil {
			return nil, fmt.Errorf("keyring file %s: key %d: %w", path, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func writeKeyringFile(path string, keys [][]byte) error {
	encoded := make([]string, len(keys))
	for i, k := range keys {
		encoded[i] = EncodeKey(k)
	}
	return writeFileAtomic(path, encoded, 0o600)
}
