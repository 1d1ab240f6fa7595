package policy

import (
	"fmt"
	"testing"
)

func TestZZExplore(t *testing.T) {
	schema := `entity User = { level: Long };
entity Doc = { owner: User };
action read appliesTo { principal: User, resource: Doc, context: {} };
action group;
action write in [group] appliesTo { principal: User, resource: Doc };
`
	cases := []Bundle{
		{Files: []File{{Name: "a.cedar", Data: []byte("permit(principal, action, resource);\n\npermit(principal ==, action, resource);\n")}}},
		{Files: []File{{Name: "s.cedarschema", Data: []byte("entity User = {\n  level: Lon;\n};\nentity X {")}}},
		{Files: []File{{Name: "s.cedarschema.json", Data: []byte("{\"\": {\"entityTypes\": {\n \"User\": 5}}}")}}},
		{Files: []File{{Name: "s.cedarschema", Data: []byte(schema)}, {Name: "p.cedar", Data: []byte("permit(principal, action == Action::\"read\", resource)\nwhen { principal.nope == 1 };\npermit(principal is Ghost, action, resource);")}}},
		{Files: []File{{Name: "s.cedarschema", Data: []byte(schema)}, {Name: "e.entities.json", Data: []byte(`[{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{"level":"x"}}, {"uid":{"type":"Ghost","id":"a"},"parents":[],"attrs":{}}]`)}}},
		{Files: []File{{Name: "e.entities.json", Data: []byte("[\n{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\n\"parents\":[],\n\"attrs\":{,}}]")}}},
		{Files: []File{{Name: "e.entities.json", Data: []byte("[\n{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\n\"parents\":[],\n\"attrs\":{}}]\n[]")}}},
		{Files: []File{{Name: "e.entities.json", Data: []byte("\n\n  [\n{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\n\"parents\":5,\n\"attrs\":{}}]")}}},
		{Files: []File{{Name: "e.entities.json", Data: []byte("[\n{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\n\"parents\":[]}]")}}},
		{Files: []File{{Name: "e.entities.json", Data: []byte("{}")}}},
		{Files: []File{{Name: "e.entities.json", Data: []byte("[{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\"parents\":[],\"attrs\":{}}, {\"uid\":{\"type\":\"User\",\"id\":\"a\"},\"parents\":[],\"attrs\":{}}]")}}},
		{Files: []File{{Name: "s.cedarschema", Data: []byte(schema)}, {Name: "p.cedar", Data: []byte("permit(principal, action in Action::\"group\", resource);")}}},
	}
	for i, b := range cases {
		s, err := Compile(b)
		fmt.Printf("case %d: err=%v\n", i, err)
		if ce, ok := err.(*CompileError); ok {
			for _, p := range ce.Problems {
				fmt.Printf("   %#v\n", p)
			}
		}
		if s != nil {
			fmt.Printf("  actions=%v ents=%d\n", s.Actions, len(s.Entities))
		}
	}
}
