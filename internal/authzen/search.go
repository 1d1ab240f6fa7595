package authzen

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/vigil-authz/vigil/internal/policy"
)

// searchKind is which element a search looks for.
type searchKind int

const (
	searchSubject searchKind = iota
	searchResource
	searchAction
)

func (k searchKind) String() string {
	return [...]string{"subject", "resource", "action"}[k]
}

// catalog lists a snapshot's search candidates in a deterministic order:
// entity IDs per type and action IDs, each sorted. It is built once per
// policy version, on the first search that needs it.
type catalog struct {
	snap    *policy.Snapshot
	byType  map[types.EntityType][]types.String
	actions []types.String
}

func (h *Handler) catalogFor(snap *policy.Snapshot) *catalog {
	if c := h.catalog.Load(); c != nil && c.snap == snap {
		return c
	}
	c := &catalog{snap: snap, byType: map[types.EntityType][]types.String{}}
	for uid := range snap.Entities {
		c.byType[uid.Type] = append(c.byType[uid.Type], uid.ID)
	}
	for _, ids := range c.byType {
		slices.Sort(ids)
	}
	for _, a := range snap.Actions {
		if a.Type == h.actionType {
			c.actions = append(c.actions, a.ID)
		}
	}
	slices.Sort(c.actions)
	h.catalog.Store(c)
	return c
}

// pageToken is the position a search continues from.
type pageToken struct {
	offset int // next candidate index
	found  int // results returned on earlier pages
}

const tokenVersion = 1

// search serves the three search endpoints.
func (h *Handler) search(w http.ResponseWriter, c *call, doc *node, kind searchKind) (int, string) {
	snap := c.view.Policies
	limit, tokenText, err := h.parsePage(doc)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	var ev evalInput
	var searched types.EntityType
	for _, f := range [...]struct {
		name     string
		searched bool
		skip     bool
	}{
		{"subject", kind == searchSubject, false},
		{"action", false, kind == searchAction},
		{"resource", kind == searchResource, false},
	} {
		if f.skip {
			continue // an action search has no action; one sent is ignored
		}
		n := doc.get(f.name)
		if n == nil {
			if f.searched {
				return http.StatusBadRequest, f.name + ": is required: give the " + f.name + " type to search for"
			}
			return http.StatusBadRequest, f.name + ": is required"
		}
		switch f.name {
		case "action":
			ev.action, err = parseAction(n, h.actionType)
		case "subject":
			ev.subject, err = parseEntity(n, snap.Entities, !f.searched)
		case "resource":
			ev.resource, err = parseEntity(n, snap.Entities, !f.searched)
		}
		if err != nil {
			return http.StatusBadRequest, in(err, f.name).Error()
		}
		if f.searched {
			if f.name == "subject" {
				searched = ev.subject.uid.Type
			} else {
				searched = ev.resource.uid.Type
			}
		}
	}
	if n := doc.get("context"); n != nil {
		if ev.context, err = parseContext(n); err != nil {
			return http.StatusBadRequest, in(err, "context").Error()
		}
	}

	reqHash := searchHash(doc, kind)
	polHash := versionHash(snap.ID)
	var tok pageToken
	if tokenText != "" {
		if tok, err = decodeToken(tokenText, reqHash, polHash); err != nil {
			return http.StatusBadRequest, err.Error()
		}
	}

	cat := h.catalogFor(snap)
	var cands []types.String
	if kind == searchAction {
		cands = cat.actions
	} else {
		cands = cat.byType[searched]
	}
	if tok.offset > len(cands) {
		return http.StatusBadRequest, "page.token: points past the end of the results; start again without a token"
	}

	results := make([]byte, 0, 256)
	count := 0
	i := tok.offset
	scanned := 0
	for ; i < len(cands) && count < limit && scanned < h.limits.MaxSearchScan; i++ {
		scanned++
		id := cands[i]
		switch kind {
		case searchSubject:
			ev.subject = entityArg{ok: true, uid: types.NewEntityUID(searched, id)}
		case searchResource:
			ev.resource = entityArg{ok: true, uid: types.NewEntityUID(searched, id)}
		case searchAction:
			ev.action = actionArg{ok: true, uid: types.NewEntityUID(h.actionType, id)}
		}
		res, err := h.decide(c, &ev, SurfaceSearch)
		if err != nil {
			return http.StatusBadRequest, clashError(&ev, -1).Error()
		}
		if !res.Allow {
			continue
		}
		if count > 0 {
			results = append(results, ',')
		}
		count++
		if kind == searchAction {
			results = append(results, `{"name":`...)
		} else {
			results = append(results, `{"type":`...)
			results, _ = jsontext.AppendQuote(results, string(searched))
			results = append(results, `,"id":`...)
		}
		results, _ = jsontext.AppendQuote(results, strings.ToValidUTF8(string(id), "\uFFFD"))
		results = append(results, '}')
	}

	out := make([]byte, 0, len(results)+160)
	out = append(out, `{"page":{"next_token":`...)
	if i < len(cands) {
		out = append(out, '"')
		out = append(out, encodeToken(pageToken{offset: i, found: tok.found + count}, reqHash, polHash)...)
		out = append(out, '"')
	} else {
		out = append(out, `""`...)
	}
	out = append(out, `,"count":`...)
	out = strconv.AppendInt(out, int64(count), 10)
	if i >= len(cands) {
		out = append(out, `,"total":`...)
		out = strconv.AppendInt(out, int64(tok.found+count), 10)
	}
	out = append(out, '}')
	if c.explain {
		out = append(out, `,"context":{"vigil":{"policy_version":`...)
		out, _ = jsontext.AppendQuote(out, snap.ID)
		out = append(out, `,"scanned":`...)
		out = strconv.AppendInt(out, int64(scanned), 10)
		out = append(out, "}}"...)
	}
	out = append(out, `,"results":[`...)
	out = append(out, results...)
	out = append(out, "]}"...)
	writeJSON(w, out)
	return 0, ""
}

// parsePage reads page.limit (default and cap from Limits) and page.token.
func (h *Handler) parsePage(doc *node) (limit int, token string, err error) {
	limit = h.limits.DefaultPageSize
	page := doc.get("page")
	if page == nil {
		return limit, "", nil
	}
	if page.kind != kindObject {
		return 0, "", in(fieldErr("must be an object, got %s", page.kind), "page")
	}
	if t := page.get("token"); t != nil {
		if t.kind != kindString {
			return 0, "", in(in(fieldErr("must be a string, got %s", t.kind), "token"), "page")
		}
		token = t.s
	}
	if l := page.get("limit"); l != nil {
		n, ok := int64(0), false
		if l.kind == kindNumber {
			if v, err := numberValue(l.s); err == nil {
				var lv types.Long
				lv, ok = v.(types.Long)
				n = int64(lv)
			}
		}
		if !ok || n < 1 {
			return 0, "", in(in(fieldErr("must be a positive integer"), "limit"), "page")
		}
		limit = int(min(n, int64(h.limits.MaxPageSize)))
	}
	return limit, token, nil
}

// searchHash fingerprints everything a follow-up page must repeat: the
// kind of search and the canonical form of subject, action, resource and
// context. The searched-for entity contributes only its type (its id and
// properties are ignored), and page does not contribute at all.
func searchHash(doc *node, kind searchKind) [8]byte {
	b := make([]byte, 0, 256)
	b = append(b, "authzen-search\x00"...)
	b = append(b, kind.String()...)
	for _, name := range [...]string{"subject", "action", "resource", "context"} {
		b = append(b, 0)
		b = append(b, name...)
		b = append(b, '=')
		n := doc.get(name)
		switch {
		case n == nil || (name == "action" && kind == searchAction):
			b = append(b, '-')
		case (name == "subject" && kind == searchSubject) || (name == "resource" && kind == searchResource):
			if t := n.get("type"); t != nil {
				b = canonical(b, t)
			}
		default:
			b = canonical(b, n)
		}
	}
	sum := sha256.Sum256(b)
	return [8]byte(sum[:8])
}

// canonical appends a deterministic JSON form of n: object members sorted
// by name, null members dropped (null means absent).
func canonical(b []byte, n *node) []byte {
	switch n.kind {
	case kindNull:
		return append(b, "null"...)
	case kindBool:
		return strconv.AppendBool(b, n.b)
	case kindNumber:
		return append(b, n.s...)
	case kindString:
		b, _ = jsontext.AppendQuote(b, strings.ToValidUTF8(n.s, "\uFFFD"))
		return b
	case kindArray:
		b = append(b, '[')
		for i := range n.kids {
			if i > 0 {
				b = append(b, ',')
			}
			b = canonical(b, &n.kids[i].val)
		}
		return append(b, ']')
	}
	ms := make([]*member, 0, len(n.kids))
	for i := range n.kids {
		if n.kids[i].val.kind != kindNull {
			ms = append(ms, &n.kids[i])
		}
	}
	slices.SortFunc(ms, func(x, y *member) int { return strings.Compare(x.name, y.name) })
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = jsontext.AppendQuote(b, strings.ToValidUTF8(m.name, "\uFFFD"))
		b = append(b, ':')
		b = canonical(b, &m.val)
	}
	return append(b, '}')
}

func versionHash(id string) [8]byte {
	sum := sha256.Sum256([]byte("policy-version\x00" + id))
	return [8]byte(sum[:8])
}

// encodeToken renders a page token: version, offset, found, the request
// and policy fingerprints, and a checksum over all of it. The token is
// integrity-checked, not secret, and grants nothing: every result is
// decided again when its page is requested.
func encodeToken(t pageToken, req, pol [8]byte) string {
	b := make([]byte, 0, 48)
	b = append(b, tokenVersion)
	b = binary.AppendUvarint(b, uint64(t.offset))
	b = binary.AppendUvarint(b, uint64(t.found))
	b = append(b, req[:]...)
	b = append(b, pol[:]...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:8]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

const maxTokenLen = 128

func decodeToken(s string, req, pol [8]byte) (pageToken, error) {
	bad := fmt.Errorf("page.token: not a token this PDP issued, or it was altered; start the search again without a token")
	if len(s) > maxTokenLen {
		return pageToken{}, bad
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 1+2+8+8+8 || b[0] != tokenVersion {
		return pageToken{}, bad
	}
	body, sum := b[:len(b)-8], b[len(b)-8:]
	want := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum, want[:8]) != 1 {
		return pageToken{}, bad
	}
	rest := body[1:]
	off, n := binary.Uvarint(rest)
	if n <= 0 {
		return pageToken{}, bad
	}
	rest = rest[n:]
	found, n := binary.Uvarint(rest)
	if n <= 0 || len(rest[n:]) != 16 || off > 1<<40 || found > off {
		return pageToken{}, bad
	}
	rest = rest[n:]
	if !bytes.Equal(rest[8:16], pol[:]) {
		return pageToken{}, fmt.Errorf("page.token: the policy set changed since the previous page was served; start the search again without a token")
	}
	if !bytes.Equal(rest[:8], req[:]) {
		return pageToken{}, fmt.Errorf("page.token: was issued for a different search; a follow-up page must repeat subject, action, resource and context unchanged (only page may differ), or start again without a token")
	}
	return pageToken{offset: int(off), found: int(found)}, nil
}
