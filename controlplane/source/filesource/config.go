package filesource

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/catalog"
)

// Defaults of Config.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultRescan   = 30 * time.Second
)

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("bad file source config")

// Config configures a FileSource.
type Config struct {
	// Dir is the directory of YAML and JSON files to read (not its
	// subdirectories). It must exist when New is called.
	Dir string
	// Cluster is the name of this cluster: the exporting cluster of every
	// export and the cluster of every endpoint. Required, a DNS-1123 label.
	Cluster string
	// Region is the region of every endpoint.
	Region string
	// Zone is the zone of endpoints that do not name one.
	Zone string
	// Logger receives problems and changes; nil discards them.
	Logger *slog.Logger
	// Registerer registers the source's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
	// Debounce is how long the directory must stay quiet after a change
	// before it is read again; 0 means DefaultDebounce.
	Debounce time.Duration
	// Rescan is the period of a full re-read, a safety net for changes the
	// watch misses (and the only way changes are seen when the platform
	// offers no watch); 0 means DefaultRescan.
	Rescan time.Duration
	// Now tells the time that stamps ServiceExports without a
	// creationTimestamp; default time.Now.
	Now func() time.Time
}

// withDefaults validates the config and fills its zero values.
func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("%w: dir must be set", ErrConfig)
	}
	fi, err := os.Stat(c.Dir)
	if err != nil {
		return c, fmt.Errorf("%w: dir: %w", ErrConfig, err)
	}
	if !fi.IsDir() {
		return c, fmt.Errorf("%w: dir %s is not a directory", ErrConfig, c.Dir)
	}
	if why := catalog.IsDNS1123Label(c.Cluster); why != "" {
		return c, fmt.Errorf("%w: cluster %q: %s", ErrConfig, c.Cluster, why)
	}
	switch {
	case c.Debounce < 0:
		return c, fmt.Errorf("%w: debounce %v must not be negative", ErrConfig, c.Debounce)
	case c.Debounce == 0:
		c.Debounce = DefaultDebounce
	}
	switch {
	case c.Rescan < 0:
		return c, fmt.Errorf("%w: rescan %v must not be negative", ErrConfig, c.Rescan)
	case c.Rescan == 0:
		c.Rescan = DefaultRescan
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
