package federation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestScopedImports: c00 consumes echo only; it merges echo from every
// cluster, its own service, and nothing else of its peers, and persists
// only echo of each; c01, without a scope, imports everything. A change
// of c01's own service does not reach c00; a change of echo does.
func TestScopedImports(t *testing.T) {
	o := testOptions{fence: time.Minute}
	scoped := o
	scoped.importScope = []catalog.ServiceKey{{Namespace: "demo", Name: "echo"}}
	c00, c01 := startPair(t, scoped, o)

	names := func(v *catalog.View) []string {
		var out []string
		if v != nil {
			for _, s := range v.Services {
				out = append(out, s.Name)
			}
		}
		return out
	}
	poll.Until(t, time.Minute, "c00 merges echo from both clusters and no other import", func() error {
		v := c00.fed.View()
		if got := names(v); !slices.Equal(got, []string{"echo", "own-c00"}) {
			return fmt.Errorf("c00's services %v, want echo and own-c00", got)
		}
		if echo := service(v, "echo"); len(echo.Endpoints) != 4 {
			return fmt.Errorf("c00's echo: %+v, want both clusters' endpoints", echo)
		}
		return nil
	})
	poll.Until(t, time.Minute, "c01 imports everything", func() error {
		if got := names(c01.fed.View()); !slices.Equal(got, []string{"echo", "own-c00", "own-c01"}) {
			return fmt.Errorf("c01's services %v, want echo, own-c00 and own-c01", got)
		}
		return nil
	})
	poll.Until(t, time.Minute, "c00 persists only echo of c01", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		imports, err := c00.st.ListImports(ctx)
		if err != nil {
			return err
		}
		es := imports["c01"].Exports
		if len(es) != 1 || es[0].Service.Name != "echo" {
			return fmt.Errorf("c00's persisted imports of c01: %+v, want echo only", es)
		}
		return nil
	})

	// c01 changes both services: echo reaches c00, own-c01 does not.
	c01.setExports(t, []catalog.Export{
		export("c01", "echo", t0.Add(time.Minute), 8080, "127.0.2.1", "127.0.2.2", "127.0.2.9"),
		export("c01", "own-c01", t0, 9090, "127.0.2.3", "127.0.2.4"),
	})
	poll.Until(t, time.Minute, "c00 merges c01's new echo endpoint", func() error {
		if echo := service(c00.fed.View(), "echo"); echo == nil || len(echo.Endpoints) != 5 {
			return fmt.Errorf("c00's echo: %+v, want 5 endpoints", echo)
		}
		return nil
	})
	if got := names(c00.fed.View()); !slices.Equal(got, []string{"echo", "own-c00"}) {
		t.Errorf("c00's services after c01's change: %v, want echo and own-c00", got)
	}
}

func TestImportScopeInvalid(t *testing.T) {
	_, err := New(Config{Cluster: "c00", ImportScope: []catalog.ServiceKey{{Namespace: "demo", Name: "Not_A_Label"}}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "import scope: service demo/Not_A_Label") {
		t.Fatalf("New with a bad import scope: %v, want ErrConfig naming the service", err)
	}
}
