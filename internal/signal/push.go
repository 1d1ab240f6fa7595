package signal

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
)

// SETMediaType is the media type of a pushed SET.
const SETMediaType = "application/secevent+jwt"

// ServeHTTP is the RFC 8935 push endpoint for every transmitter configured
// with push. Answers:
//
//   - 202, empty body: the SET was verified and is in force (Publish
//     returned), or was a duplicate, or is an event Vigil ignores;
//   - 400 {"err","description"} with an RFC 8935 code for an invalid SET;
//   - 401 without Authorization, 403 with a wrong one (constant-time
//     comparison with the transmitter's push.authorization);
//   - 405 for a method other than POST, 415 for another media type, 413
//     for a body over 64 KiB;
//   - 503 when the transmitter's keys are not loaded yet or the journal is
//     unavailable: the transmitter retries, and nothing was acknowledged.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErr(w, http.StatusMethodNotAllowed, CodeInvalidRequest, "use POST")
		return
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != SETMediaType {
		writeErr(w, http.StatusUnsupportedMediaType, CodeInvalidRequest, "Content-Type must be "+SETMediaType)
		return
	}
	auth := req.Header.Get("Authorization")
	if status, code := r.preAuth(auth); status != 0 {
		writeErr(w, status, code, "push authorization failed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxSETSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeErr(w, http.StatusRequestEntityTooLarge, CodeInvalidRequest, "SET larger than 64 KiB")
			return
		}
		writeErr(w, http.StatusBadRequest, CodeInvalidRequest, "cannot read body")
		return
	}
	// Verification needs the transmitter, which the SET names; the
	// per-transmitter authorization is checked before anything is applied.
	set, t, err := r.verify(req.Context(), nil, body)
	if t != nil {
		if t.cfg.Push == nil {
			writeErr(w, http.StatusForbidden, CodeAccessDenied, "push delivery is not configured for this transmitter")
			return
		}
		if want := t.cfg.Push.Authorization; want != "" {
			if auth == "" {
				writeErr(w, http.StatusUnauthorized, CodeAuthenticationFailed, "Authorization header required")
				return
			}
			if subtle.ConstantTimeCompare([]byte(auth), []byte(want)) != 1 {
				writeErr(w, http.StatusForbidden, CodeAccessDenied, "Authorization header does not match this transmitter")
				return
			}
		}
	}
	if err != nil {
		r.rejected(t, err)
		r.answer(w, err)
		return
	}
	if _, err := r.process(req.Context(), t, set); err != nil {
		r.answer(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// preAuth rejects a request whose Authorization header cannot belong to
// any push transmitter, before the body is read.
func (r *Receiver) preAuth(auth string) (status int, code string) {
	anyOpen, anyMatch, anyPush := false, false, false
	for _, t := range r.order {
		if t.cfg.Push == nil {
			continue
		}
		anyPush = true
		want := t.cfg.Push.Authorization
		if want == "" {
			anyOpen = true
			continue
		}
		if subtle.ConstantTimeCompare([]byte(auth), []byte(want)) == 1 {
			anyMatch = true
		}
	}
	switch {
	case !anyPush:
		return http.StatusForbidden, CodeAccessDenied
	case anyOpen || anyMatch:
		return 0, ""
	case auth == "":
		return http.StatusUnauthorized, CodeAuthenticationFailed
	}
	return http.StatusForbidden, CodeAccessDenied
}

func (r *Receiver) answer(w http.ResponseWriter, err error) {
	var se *SETError
	if errors.As(err, &se) {
		writeErr(w, http.StatusBadRequest, se.Code, se.Description)
		return
	}
	w.Header().Set("Retry-After", "5")
	if errors.Is(err, ErrNotReady) {
		writeErr(w, http.StatusServiceUnavailable, "temporarily_unavailable", "transmitter keys are not loaded yet; retry")
		return
	}
	writeErr(w, http.StatusServiceUnavailable, "temporarily_unavailable", "signal journal unavailable; retry")
}

func writeErr(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}{code, desc})
}
