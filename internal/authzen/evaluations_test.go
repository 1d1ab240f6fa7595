package authzen

import (
	"strings"
	"testing"
)

func TestEvaluations(t *testing.T) {
	h := newTodoHandler(t, Options{Limits: Limits{MaxEvaluations: 3}})
	morty := `"subject":{"type":"user","id":"` + pidMorty + `"}`
	update := `"action":{"name":"can_update_todo"}`
	todo := func(owner string) string {
		return `{"type":"todo","id":"t","properties":{"ownerID":"` + owner + `"}}`
	}
	own, other := `{"resource":`+todo("morty@the-citadel.com")+`}`, `{"resource":`+todo("rick@the-citadel.com")+`}`
	batch := func(semantic string, items ...string) string {
		opts := ""
		if semantic != "" {
			opts = `,"options":{"evaluations_semantic":"` + semantic + `","vendor_option":true}`
		}
		return `{` + morty + `,` + update + opts + `,"evaluations":[` + strings.Join(items, ",") + `]}`
	}
	itemErr := func(msg string) string {
		return `{"decision":false,"context":{"error":{"status":400,"message":"` + msg + `"}}}`
	}

	tests := []struct {
		name   string
		body   string
		status int
		want   string // exact body for 200, detail substring otherwise
	}{
		{"items use the defaults and keep request order", batch("", other, own, other), 200,
			`{"evaluations":[{"decision":false},{"decision":true},{"decision":false}]}`},
		{"execute_all evaluates every item", batch("execute_all", own, other, own), 200,
			`{"evaluations":[{"decision":true},{"decision":false},{"decision":true}]}`},
		{"deny_on_first_deny stops after the first deny", batch("deny_on_first_deny", own, other, own), 200,
			`{"evaluations":[{"decision":true},{"decision":false}]}`},
		{"deny_on_first_deny without a deny returns every item", batch("deny_on_first_deny", own, own), 200,
			`{"evaluations":[{"decision":true},{"decision":true}]}`},
		{"permit_on_first_permit stops after the first permit", batch("permit_on_first_permit", other, own, own), 200,
			`{"evaluations":[{"decision":false},{"decision":true}]}`},
		{"permit_on_first_permit without a permit returns every item", batch("permit_on_first_permit", other, other), 200,
			`{"evaluations":[{"decision":false},{"decision":false}]}`},
		{"an item key replaces the default as a whole object", `{` + morty + `,` + update + `,"resource":` + todo("morty@the-citadel.com") +
			`,"evaluations":[{},{"resource":{"type":"todo","id":"t"}}]}`, 200,
			`{"evaluations":[{"decision":true},{"decision":false}]}`},
		{"an item may override the subject", batch("", `{"subject":{"type":"user","id":"`+pidRick+`"},"resource":`+todo("x")+`}`), 200,
			`{"evaluations":[{"decision":true}]}`},
		{"a null item member falls back to the default", batch("", `{"resource":`+todo("morty@the-citadel.com")+`,"subject":null}`), 200,
			`{"evaluations":[{"decision":true}]}`},
		{"an empty evaluations array is a single evaluation", `{` + morty + `,` + update + `,"resource":` + todo("morty@the-citadel.com") + `,"evaluations":[]}`, 200,
			`{"decision":true}`},
		{"an absent evaluations array is a single evaluation", `{` + morty + `,` + update + `,"resource":` + todo("rick@the-citadel.com") + `}`, 200,
			`{"decision":false}`},
		{"an item without a subject and no default is an item error", `{` + update + `,"evaluations":[{"resource":` + todo("x") + `},{` + morty + `,"resource":` + todo("morty@the-citadel.com") + `}]}`, 200,
			`{"evaluations":[` + itemErr("evaluations[0].subject: is required: neither the item nor the request's defaults give a subject") + `,{"decision":true}]}`},
		{"an item with a bad value is an item error", batch("", `{"resource":{"type":"todo","id":"t","properties":{"n":0.00001}}}`, own), 200,
			`{"evaluations":[` + itemErr("evaluations[0].resource.properties.n: number 0.00001 has more than 4 decimal places; Cedar decimals hold at most 4 (round it, scale it to an integer, or send it as a string)") + `,{"decision":true}]}`},
		{"a non-object item is an item error", batch("", `7`, own), 200,
			`{"evaluations":[` + itemErr("evaluations[0]: must be an object, got number") + `,{"decision":true}]}`},
		{"an item error counts as a deny for deny_on_first_deny", batch("deny_on_first_deny", `{"resource":5}`, own), 200,
			`{"evaluations":[` + itemErr("evaluations[0].resource: must be an object with \\\"type\\\" and \\\"id\\\", got number") + `]}`},

		{"an item action clashing with the default context is located in the item", `{` + morty + `,"context":{"action":1},"resource":` + todo("x") + `,"evaluations":[{"action":{"name":"a","properties":{"p":1}}}]}`, 200,
			`{"evaluations":[` + itemErr("evaluations[0].action.properties: conflicts with context.action; Vigil passes action.properties to policies as context.action, so send only one of them") + `]}`},
		{"an item context clashing with the default action is located in the item", `{` + morty + `,"action":{"name":"a","properties":{"p":1}},"resource":` + todo("x") + `,"evaluations":[{"context":{"action":1}}]}`, 200,
			`{"evaluations":[` + itemErr("evaluations[0].context.action: conflicts with the default action's properties; Vigil passes action.properties to policies as context.action, so send only one of them") + `]}`},
		{"an unknown semantic is rejected", batch("first_one_wins", own), 400, `options.evaluations_semantic: unknown value "first_one_wins"`},
		{"a non-string semantic is rejected", `{"options":{"evaluations_semantic":1},"evaluations":[` + own + `]}`, 400, "options.evaluations_semantic: must be a string"},
		{"non-object options are rejected", `{"options":[],"evaluations":[` + own + `]}`, 400, "options: must be an object"},
		{"a non-array evaluations member is rejected", `{"evaluations":{}}`, 400, "evaluations: must be an array, got object"},
		{"too many items are rejected", batch("", own, own, own, own), 400, "evaluations: 4 items; at most 3"},
		{"a malformed default rejects the whole request", `{"subject":{"type":"user","id":1},"evaluations":[` + own + `]}`, 400, "subject.id: must be a string"},
		{"a single-shape request still needs all three members", `{` + morty + `,"evaluations":[]}`, 400, "action: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(h, PathEvaluations, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 {
				if rec.Body.String() != tt.want {
					t.Fatalf("body\n %s\nwant\n %s", rec.Body, tt.want)
				}
				return
			}
			if p := decodeProblem(t, rec); !strings.Contains(p.Detail, tt.want) {
				t.Fatalf("detail %q, want it to contain %q", p.Detail, tt.want)
			}
		})
	}
}
