package echo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServerReplies(t *testing.T) {
	srv := httptest.NewServer(New(Config{Cluster: "east-1", Workload: "echo-1", Service: "echo", Version: "v1"}))
	defer srv.Close()

	for i := 1; i <= 2; i++ {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hello", strings.NewReader("12345"))
		req.Header.Set(ClientIDHeader, "spiffe://fedmesh.local/ns/demo/sa/client")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got Reply
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := Reply{Cluster: "east-1", Workload: "echo-1", Service: "echo", Version: "v1", ClientID: "spiffe://fedmesh.local/ns/demo/sa/client",
			Method: "POST", Path: "/hello", BodyBytes: 5, Count: uint64(i)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("reply %d (-want +got):\n%s", i, diff)
		}
		if by := resp.Header.Get("x-fedmesh-served-by"); by != "east-1/echo-1" {
			t.Errorf("served-by header = %q", by)
		}
	}
}
