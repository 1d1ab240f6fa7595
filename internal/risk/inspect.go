package risk

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/vigil-authz/vigil/internal/problem"
)

// Report is what the engine knows about a user or a session id: the body
// of GET /admin/v1/risk.
type Report struct {
	Query ReportQuery `json:"query"`
	// Now is the time the scores were computed for.
	Now time.Time `json:"now"`
	// Subjects are the matching users (one per issuer), each with its most
	// recent sessions; empty when the engine tracks none.
	Subjects []SubjectReport `json:"subjects"`
	// Sessions are the sessions matching a sid-only query.
	Sessions []KeyReport `json:"sessions,omitempty"`
}

// ReportQuery echoes the query.
type ReportQuery struct {
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	SessionID string `json:"sid,omitempty"`
}

// SubjectReport is one tracked user.
type SubjectReport struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	KeyReport
	// Sessions are the user's sessions the engine tracks (most recently
	// seen first, at most MaxReportSessions).
	Sessions []KeyReport `json:"sessions"`
}

// KeyReport is the risk of one user or session.
type KeyReport struct {
	// SessionID is set for sessions.
	SessionID string `json:"sid,omitempty"`
	// Score (0-100) and Level are current: contributions faded to now.
	Score int    `json:"score"`
	Level string `json:"level"`
	// Published is what the journal last received from this engine (LOW
	// with no time when nothing was published).
	Published Published `json:"published"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen"`
	// Contributions are the live findings, strongest first.
	Contributions []ContributionReport `json:"contributions"`
}

// Published is the last published level.
type Published struct {
	Level string    `json:"level"`
	Score int       `json:"score"`
	At    time.Time `json:"at,omitzero"`
}

// ContributionReport is one detector finding.
type ContributionReport struct {
	Detector string `json:"detector"`
	// Points are the finding's full weight; Effective its weight now
	// (fading towards expiry).
	Points    int       `json:"points"`
	Effective int       `json:"effective"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	Expires   time.Time `json:"expires"`
}

// MaxReportSessions bounds the sessions listed per user.
const MaxReportSessions = 50

// Inspect reports what the engine knows about a user (sub, optionally
// narrowed to issuer iss) or, with sub empty, a session id. Looking up a
// user's sessions walks the session table: it costs about 10 ms per
// million tracked sessions, under the engine's lock.
func (e *Engine) Inspect(q ReportQuery) Report {
	nowT := e.now()
	now := stampOf(nowT)
	rep := Report{Query: q, Now: nowT.UTC().Truncate(time.Second), Subjects: []SubjectReport{}}
	e.mu.Lock()
	defer e.mu.Unlock()
	if q.Subject == "" {
		if q.SessionID == "" {
			return rep
		}
		for _, k := range e.issuers.lookupKeys(q.Issuer, q.SessionID) {
			if n := e.sessions.get(k); n != nil {
				rep.Sessions = append(rep.Sessions, e.keyReport(&n.val.scoring, 0, n.last, q.SessionID, now))
			}
		}
		return rep
	}
	for _, k := range e.issuers.lookupKeys(q.Issuer, q.Subject) {
		n := e.subjects.get(k)
		if n == nil {
			continue
		}
		iss, sub := e.issuers.split(k)
		sr := SubjectReport{Issuer: iss, Subject: sub, KeyReport: e.keyReport(&n.val.scoring, n.val.firstSeen, n.last, "", now), Sessions: []KeyReport{}}
		for sn := e.sessions.head; sn != nil && len(sr.Sessions) < MaxReportSessions; sn = sn.next {
			if sn.val.subject != k {
				continue
			}
			if _, sid := e.issuers.split(sn.key); q.SessionID == "" || sid == q.SessionID {
				sr.Sessions = append(sr.Sessions, e.keyReport(&sn.val.scoring, 0, sn.last, sid, now))
			}
		}
		rep.Subjects = append(rep.Subjects, sr)
	}
	return rep
}

func (e *Engine) keyReport(sc *scoring, first, last stamp, sid string, now stamp) KeyReport {
	score := sc.score(now, e.fade)
	kr := KeyReport{
		SessionID:     sid,
		Score:         score,
		Level:         levelOf(score, &e.cfg.Score).String(),
		Published:     Published{Level: sc.pubLevel.String(), Score: int(sc.pubScore), At: sc.pubAt.time()},
		FirstSeen:     first.time(),
		LastSeen:      last.time(),
		Contributions: []ContributionReport{},
	}
	for i := range sc.contribs {
		c := &sc.contribs[i]
		eff := c.effective(now, e.fade)
		if eff <= 0 {
			continue
		}
		kr.Contributions = append(kr.Contributions, ContributionReport{
			Detector: ruleDetectors[c.rule].String(), Points: int(c.points), Effective: int(eff + 0.5),
			Reason: c.reason, At: c.at.time(), Expires: c.expires.time(),
		})
	}
	slices.SortStableFunc(kr.Contributions, func(a, b ContributionReport) int { return b.Effective - a.Effective })
	return kr
}

// AdminHandler serves GET /admin/v1/risk?sub=…[&iss=…][&sid=…]: the
// engine's current scores, levels and contributions for a user and its
// sessions (or, with sid alone, for a session). It answers 400 without
// sub or sid. Mount it behind the admin API's authentication.
func (e *Engine) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		q := ReportQuery{Issuer: v.Get("iss"), Subject: v.Get("sub"), SessionID: v.Get("sid")}
		for name, s := range map[string]string{"iss": q.Issuer, "sub": q.Subject, "sid": q.SessionID} {
			if len(s) > maxIDLen || !utf8.ValidString(s) {
				problem.Error(w, http.StatusBadRequest, name+" must be at most 1024 bytes of UTF-8")
				return
			}
		}
		if q.Subject == "" && q.SessionID == "" {
			problem.Error(w, http.StatusBadRequest, "give sub (the token's sub, optionally with iss) or sid")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e.Inspect(q))
	})
}
