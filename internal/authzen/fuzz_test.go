package authzen

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSeeds are request bodies covering every shape the handler accepts,
// plus the conformance vectors when they are present.
func fuzzSeeds(tb testing.TB) []string {
	seeds := []string{
		`{"subject":{"type":"user","id":"` + pidMorty + `"},"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"1","properties":{"ownerID":"morty@the-citadel.com"}}}`,
		`{"subject":{"type":"user","id":"u"},"action":{"name":"a","properties":{"m":1}},"resource":{"type":"todo","id":"x"},"context":{"d":1.5,"e":{"__entity":{"type":"user","id":"a"}},"i":{"__extn":{"fn":"ip","arg":"::1"}}}}`,
		`{"subject":{"type":"user","id":"u"},"action":{"name":"can_read_todos"},"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"resource":{"type":"todo","id":"1"}},{},7]}`,
		`{"subject":{"type":"user"},"action":{"name":"can_read_user"},"resource":{"type":"user","id":"x"},"page":{"limit":2,"token":""}}`,
		`{"a":[[[[[[]]]]]],"b":1e400,"c":-0.00001,"d":"\ud800"}`,
		``, `{`, `[]`, `null`, `{"subject":{"type":"user","type":"x"}}`,
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(tb), "..", "shared", "conformance", "authzen-todo-decisions.json"))
	if err == nil {
		var v map[string][]struct {
			Request json.RawMessage `json:"request"`
		}
		if json.Unmarshal(data, &v) == nil {
			for _, cases := range v {
				for _, c := range cases {
					seeds = append(seeds, string(c.Request))
				}
			}
		}
	}
	return seeds
}

// FuzzEvaluation sends arbitrary bodies to every endpoint: the handler
// must never panic and must answer 200, 400 or 413 (a deny is a 200).
func FuzzEvaluation(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add(uint8(i), []byte(s))
	}
	h := newTodoHandler(f, Options{Limits: Limits{MaxBodyBytes: 4096, MaxEvaluations: 20, MaxSearchScan: 50}})
	paths := h.Paths()[:5]
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		rec := post(h, path, string(body))
		switch rec.Code {
		case http.StatusOK:
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("200 with %q body %q", ct, rec.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if !json.Valid(rec.Body.Bytes()) || !strings.Contains(rec.Body.String(), `"detail"`) {
				t.Fatalf("%d with body %q", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// FuzzJSONToCedar converts arbitrary JSON to Cedar values: it must never
// panic, must reject what encoding/json rejects, and every error must name
// where it happened.
func FuzzJSONToCedar(f *testing.F) {
	for _, s := range []string{
		`1`, `-0.5`, `1e3`, `1.23456`, `99999999999999999999`, `"s"`, `true`, `null`, `[1,[2,[3]]]`,
		`{"a":{"b":null}}`, `{"__entity":{"type":"A::B","id":"x"}}`, `{"__extn":{"fn":"decimal","arg":"1.1"}}`,
		`{"__extn":{"fn":"datetime","arg":"2024-02-29T23:59:59.999+0100"}}`, `{"__extn":{"fn":"duration","arg":"-1d2h"}}`,
		`{"__extn":{"fn":"ip","arg":"10.0.0.1/33"}}`, `{"a":1,"a":2}`, `[`, `1 2`,
	} {
		f.Add([]byte(s))
	}
	var shared parser // reused across inputs, as the handler reuses parsers
	f.Fuzz(func(t *testing.T, data []byte) {
		var fresh parser
		n1, err1 := fresh.decode(bytes.NewBuffer(data), 16)
		// A tree is valid until its parser's next decode; the previous
		// input must leave no trace in the next tree.
		n2, err2 := shared.decode(bytes.NewBuffer(data), 16)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && string(canonical(nil, &n1)) != string(canonical(nil, &n2))) {
			t.Fatalf("a reused parser decodes differently: %v / %v", err1, err2)
		}
		if len(data)%2 == 0 {
			shared.release()
		}

		v, err := DecodeValue(data, 16)
		if err == nil && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q as %v", data, v)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
		var fe *fieldError
		if asFieldError(err, &fe) && !strings.HasPrefix(fe.Error(), "value") {
			t.Fatalf("error %q does not start at the value", fe.Error())
		}
	})
}

func asFieldError(err error, target **fieldError) bool {
	fe, ok := err.(*fieldError)
	if ok {
		*target = fe
	}
	return ok
}
