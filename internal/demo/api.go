package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// Document is one document of the sample API.
type Document struct {
	ID      string    `json:"id"`
	Title   string    `json:"title"`
	Body    string    `json:"body"`
	Owner   string    `json:"owner"`
	Updated time.Time `json:"updated"`
}

// Bounds of the sample API.
const (
	maxDocumentBytes = 64 << 10
	maxDocuments     = 1000
	maxTitleRunes    = 200
	// tickInterval paces the event stream and the WebSocket.
	tickInterval = time.Second
)

// seedDocuments are the documents the API starts with; their owners are
// also recorded in demo.entities.json, which is what the policies see.
func seedDocuments(now time.Time) []Document {
	return []Document{
		{ID: "doc-1", Title: "Quarterly plan", Body: "Ship continuous authorization.", Owner: "alice", Updated: now},
		{ID: "doc-2", Title: "Bob's notes", Body: "Remember to rotate the keys.", Owner: "bob", Updated: now},
		{ID: "doc-3", Title: "Dave's draft", Body: "Nothing to see yet.", Owner: "dave", Updated: now},
	}
}

// api is the sample REST API. It trusts the gateway: the caller is the
// X-Vigil-Subject header the gateway sets after a verified token (the
// gateway removes any client-supplied copy). Anything that reaches it
// directly bypasses Vigil, which is why it listens on an ephemeral
// loopback port.
type api struct {
	log           *slog.Logger
	now           func() time.Time
	subjectHeader string

	mu   sync.Mutex
	docs map[string]Document
	next int
}

func newAPI(log *slog.Logger, now func() time.Time, subjectHeader string) *api {
	a := &api{log: log, now: now, subjectHeader: subjectHeader, docs: map[string]Document{}}
	for _, d := range seedDocuments(now()) {
		a.docs[d.ID] = d
	}
	a.next = len(a.docs) + 1
	return a
}

// handler returns the API's routes.
func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /documents", a.list)
	mux.HandleFunc("POST /documents", a.create)
	mux.HandleFunc("GET /documents/{id}", a.get)
	mux.HandleFunc("PUT /documents/{id}", a.update)
	mux.HandleFunc("DELETE /documents/{id}", a.remove)
	mux.HandleFunc("GET /events", a.events)
	mux.HandleFunc("GET /ws", a.webSocket)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	out := make([]Document, 0, len(a.docs))
	for _, d := range a.docs {
		out = append(out, d)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Document) int { return strings.Compare(x.ID, y.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"documents": out})
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	d, ok := a.docs[r.PathValue("id")]
	a.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no such document")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// input is the body of create and update requests.
type input struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

func (a *api) readInput(w http.ResponseWriter, r *http.Request) (input, bool) {
	var in input
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDocumentBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a document is at most %d bytes", maxDocumentBytes))
			return input{}, false
		}
		writeError(w, http.StatusBadRequest, `send JSON like {"title": "...", "body": "..."}: `+err.Error())
		return input{}, false
	}
	if in.Title == "" || utf8.RuneCountInString(in.Title) > maxTitleRunes {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("title must be 1-%d characters", maxTitleRunes))
		return input{}, false
	}
	return in, true
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	owner := r.Header.Get(a.subjectHeader)
	if owner == "" {
		writeError(w, http.StatusUnauthorized, "no verified caller; call the API through the Vigil gateway")
		return
	}
	in, ok := a.readInput(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	if len(a.docs) >= maxDocuments {
		a.mu.Unlock()
		writeError(w, http.StatusInsufficientStorage, fmt.Sprintf("the demo keeps at most %d documents", maxDocuments))
		return
	}
	d := Document{ID: "doc-" + strconv.Itoa(a.next), Title: in.Title, Body: in.Body, Owner: owner, Updated: a.now()}
	a.next++
	a.docs[d.ID] = d
	a.mu.Unlock()
	w.Header().Set("Location", "/documents/"+d.ID)
	writeJSON(w, http.StatusCreated, d)
}

func (a *api) update(w http.ResponseWriter, r *http.Request) {
	in, ok := a.readInput(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	d, found := a.docs[r.PathValue("id")]
	if found {
		d.Title, d.Body, d.Updated = in.Title, in.Body, a.now()
		a.docs[d.ID] = d
	}
	a.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "no such document")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *api) remove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.mu.Lock()
	_, found := a.docs[id]
	delete(a.docs, id)
	a.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "no such document")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// tick is the payload of the live feeds.
type tick struct {
	N     int       `json:"n"`
	Time  time.Time `json:"time"`
	For   string    `json:"for"`
	Count int       `json:"documents"`
}

func (a *api) tick(n int, subject string) tick {
	a.mu.Lock()
	defer a.mu.Unlock()
	return tick{N: n, Time: a.now().UTC().Truncate(time.Millisecond), For: subject, Count: len(a.docs)}
}

// events is a server-sent event stream: one "tick" event a second until
// the client (or the gateway, when access ends) goes away.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	subject := r.Header.Get(a.subjectHeader)
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		b, _ := json.Marshal(a.tick(n, subject)) // plain struct: cannot fail
		if _, err := fmt.Fprintf(w, "event: tick\nid: %d\ndata: %s\n\n", n, b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// webSocket sends one tick a second and echoes text messages back.
func (a *api) webSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	c.SetReadLimit(maxDocumentBytes)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	subject := r.Header.Get(a.subjectHeader)
	var wmu sync.Mutex
	send := func(v any) error {
		b, _ := json.Marshal(v) // plain values: cannot fail
		wmu.Lock()
		defer wmu.Unlock()
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		return c.Write(wctx, websocket.MessageText, b)
	}
	go func() {
		defer cancel()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageText {
				if err := send(map[string]string{"echo": string(msg)}); err != nil {
					return
				}
			}
		}
	}()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		if err := send(a.tick(n, subject)); err != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		a.log.Debug("websocket closed", "err", err)
	}
}
