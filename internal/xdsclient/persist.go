package xdsclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Persisted state. With Config.DataDir set, every accepted response is
// written to DataDir/TYPE.pb (TYPE = cluster, endpoint, listener, route,
// secret): a binary envoy.service.discovery.v3.DiscoveryResponse holding
// the type URL, the version and the resources as received. Files are
// 0600 (secrets carry the workload's private key) and replaced atomically
// (write to a temporary file, sync, rename), so a crash leaves the old
// file or the new one, never half of one.
//
// If no control plane has answered within Config.RestoreAfter of Run's
// start, Run reads them; the sound sets go to Config.CheckRestored and
// then to the Handler, in subscription order, marked Update.Persisted; the
// client then reports Source "persisted" until the control plane answers,
// whose sets replace them type by type. Persisted versions are never
// announced to the control plane: a restarted control plane may reuse a
// version string for other content, so the first stream asks for
// everything.
//
// A file that cannot be read or decoded, or whose resources fail
// validation, is refused with a log naming the file and the reason,
// counted in fedmesh_xds_persisted_rejected_total{reason}, and ignored.

// persistedFile is the file of one type in dir.
func persistedFile(dir, typeURL string) string {
	return filepath.Join(dir, shortType(typeURL)+".pb")
}

// encodePersisted is the file content for one accepted response.
func encodePersisted(typeURL, version string, resources []*anypb.Any) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&discoveryv3.DiscoveryResponse{
		TypeUrl: typeURL, VersionInfo: version, Resources: resources,
	})
}

// DecodePersisted parses a persisted file of typeURL: the type must match,
// the version must be set and the resources pass Decode. The reason is a
// short metrics label (decode, type, version, or Decode's).
func DecodePersisted(typeURL string, b []byte) (Update, string, error) {
	var resp discoveryv3.DiscoveryResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return Update{}, "decode", fmt.Errorf("decode: %w", err)
	}
	if resp.GetTypeUrl() != typeURL {
		return Update{}, "type", fmt.Errorf("holds type %q, want %q", resp.GetTypeUrl(), typeURL)
	}
	if resp.GetVersionInfo() == "" {
		return Update{}, "version", errors.New("has no version")
	}
	res, reason, err := Decode(typeURL, resp.GetResources())
	if err != nil {
		return Update{}, reason, err
	}
	return Update{TypeURL: typeURL, Version: resp.GetVersionInfo(), Resources: res, Persisted: true}, "", nil
}

// writeFileAtomic writes b to path with mode 0600 through a temporary
// file in the same directory, synced before the rename.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
