// Package httpjson writes JSON responses of the admin and debug HTTP
// endpoints.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write sends v as an indented JSON body with status code status and
// Content-Type application/json. An error writing the body means the
// client went away; there is no one left to tell, so it is dropped.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
