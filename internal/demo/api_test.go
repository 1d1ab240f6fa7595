package demo

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSampleAPI(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, method, path, subject, body string
		status                            int
		contains                          string
	}{
		{name: "listing returns the seeded documents in order", method: "GET", path: "/documents", status: 200, contains: `"id": "doc-1"`},
		{name: "a missing document is 404", method: "GET", path: "/documents/nope", status: 404},
		{name: "create needs the verified subject from the gateway", method: "POST", path: "/documents", body: `{"title":"x"}`, status: 401},
		{name: "create records the subject as owner", method: "POST", path: "/documents", subject: "bob", body: `{"title":"x"}`,
			status: 201, contains: `"owner": "bob"`},
		{name: "unknown fields are rejected", method: "POST", path: "/documents", subject: "bob", body: `{"title":"x","owner":"alice"}`, status: 400},
		{name: "an empty title is rejected", method: "POST", path: "/documents", subject: "bob", body: `{"title":""}`, status: 400},
		{name: "a body that is not JSON is rejected", method: "PUT", path: "/documents/doc-1", body: `title=x`, status: 400},
		{name: "an oversized body is rejected", method: "PUT", path: "/documents/doc-1",
			body: `{"title":"x","body":"` + strings.Repeat("a", maxDocumentBytes) + `"}`, status: 413},
		{name: "update keeps the owner", method: "PUT", path: "/documents/doc-1", subject: "bob", body: `{"title":"y"}`,
			status: 200, contains: `"owner": "alice"`},
		{name: "delete answers 204", method: "DELETE", path: "/documents/doc-3", status: 204},
		{name: "deleting a missing document is 404", method: "DELETE", path: "/documents/nope", status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(slog.New(slog.DiscardHandler), func() time.Time { return now }, "X-Vigil-Subject")
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.subject != "" {
				req.Header.Set("X-Vigil-Subject", tc.subject)
			}
			rec := httptest.NewRecorder()
			a.handler().ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body %s does not contain %s", rec.Body, tc.contains)
			}
		})
	}
}

func TestStepCurl(t *testing.T) {
	for _, tc := range []struct {
		name string
		step Step
		want string
	}{
		{"a GET names no method", Step{Method: http.MethodGet, Base: VarGateway, Path: "/documents", Bearer: "BOB"},
			`curl -i "$VIGIL/documents" -H "Authorization: Bearer $BOB"`},
		{"a DELETE names its method", Step{Method: http.MethodDelete, Base: VarGateway, Path: "/documents/doc-2", Bearer: "BOB"},
			`curl -i -X DELETE "$VIGIL/documents/doc-2" -H "Authorization: Bearer $BOB"`},
		{"a JSON body with a quote is shell-quoted", Step{Method: http.MethodPost, Base: VarPDP, Path: "/x", JSON: `{"a":"it's"}`},
			"curl -i \"$VIGIL_PDP/x\" -H 'Content-Type: application/json' \\\n    -d '{\"a\":\"it'\\''s\"}'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.step.Curl(); got != tc.want {
				t.Errorf("Curl() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
