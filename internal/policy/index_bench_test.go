package policy

import (
	"fmt"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
)

// BenchmarkNewIndex measures building the index of a large policy set, as
// every activation does.
func BenchmarkNewIndex(b *testing.B) {
	var src strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&src, "@id(\"p%d\")\npermit (principal in Team::\"t%d\", action in [Action::\"read\", Action::\"write\"], resource in Folder::\"f%d\")\nwhen { context.risk.level != \"HIGH\" };\n", i, i, i)
	}
	ps, err := cedar.NewPolicySetFromBytes("bench.cedar", []byte(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	policies := make(map[cedar.PolicyID]*cedar.Policy)
	for id, p := range ps.All() {
		policies[id] = p
	}
	b.ReportAllocs()
	for b.Loop() {
		if ix := NewIndex(policies); ix.Len() != 10000 {
			b.Fatal(ix.Len())
		}
	}
}
