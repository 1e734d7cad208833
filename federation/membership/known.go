package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// KnownMember is a member this control plane once saw alive: where to
// find it again after a partition outlasts serf's reap time.
type KnownMember struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"`
	LastSeen time.Time `json:"lastSeen"`
}

// KnownMembers persists the known members. The membership calls Load once
// in New and Save from one goroutine at a time whenever the set changes;
// Save should return quickly. The control plane can back it with etcd.
type KnownMembers interface {
	Load() ([]KnownMember, error)
	Save([]KnownMember) error
}

var (
	_ KnownMembers = (*MemoryKnownMembers)(nil)
	_ KnownMembers = (*FileKnownMembers)(nil)
)

// MemoryKnownMembers keeps the known members in memory only.
type MemoryKnownMembers struct {
	mu      sync.Mutex // guards members
	members []KnownMember
}

// Load returns a copy of the saved members.
func (m *MemoryKnownMembers) Load() ([]KnownMember, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.members), nil
}

// Save replaces the saved members.
func (m *MemoryKnownMembers) Save(members []KnownMember) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members = slices.Clone(members)
	return nil
}

// FileKnownMembers keeps the known members in a JSON file, replaced
// atomically on every save. A missing file is an empty list.
type FileKnownMembers struct {
	// Path is the file, typically known-members.json in the data dir.
	Path string
}

// maxKnownFile bounds what Load reads.
const maxKnownFile = 4 << 20

// Load reads the file.
func (f *FileKnownMembers) Load() ([]KnownMember, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known members: %w", err)
	}
	if len(b) > maxKnownFile {
		return nil, fmt.Errorf("known members file %s: %d bytes is more than %d", f.Path, len(b), maxKnownFile)
	}
	var members []KnownMember
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, fmt.Errorf("known members file %s: %w", f.Path, err)
	}
	return members, nil
}

// Save writes the file through a temporary file and a rename.
func (f *FileKnownMembers) Save(members []KnownMember) error {
	return writeFileAtomic(f.Path, members, 0o644)
}

func writeFileAtomic(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
