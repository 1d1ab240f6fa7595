package risk

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestConfigDefaultsAreValid(t *testing.T) {
	var c Config
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.IsEnabled() || c.Detectors.RequestRate.Window != time.Minute || *c.Score.Fade != 0.5 {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"points above 100", func(c *Config) { c.Detectors.ImpossibleTravel.Points = 120 }, "detectors.impossible_travel.points: must be between 0 and 100"},
		{"high not above medium", func(c *Config) { c.Score.Medium, c.Score.High = 70, 60 }, "score.high: must be above score.medium"},
		{"fade out of range", func(c *Config) { f := 1.5; c.Score.Fade = &f }, "score.fade"},
		{"fractional window", func(c *Config) { c.Detectors.DeniedBurst.Window = 1500 * time.Millisecond }, "detectors.denied_burst.window: must be a whole number of seconds"},
		{"enumeration beyond the estimator", func(c *Config) { c.Detectors.Enumeration.HighThreshold = 5000 }, "detectors.enumeration.high_threshold"},
		{"high threshold below threshold", func(c *Config) { c.Detectors.DeniedBurst.HighThreshold = 5 }, "detectors.denied_burst.high_threshold: must be at least threshold"},
		{"alpha out of range", func(c *Config) { c.Detectors.RequestRate.Alpha = 2 }, "detectors.request_rate.alpha"},
		{"a huge table", func(c *Config) { c.Limits.Subjects = 1 << 40 }, "limits.subjects"},
		{"receivers without issuer", func(c *Config) {
			c.Outbound.Receivers = []Receiver{{Name: "a", Endpoint: "https://r.example/push"}}
		}, "outbound.issuer: required"},
		{"plain http to a remote receiver", func(c *Config) {
			c.Outbound.Issuer = "https://v"
			c.Outbound.Receivers = []Receiver{{Name: "a", Endpoint: "http://r.example/push"}}
		}, "outbound.receivers[0].endpoint: \"http://r.example/push\" must use https"},
		{"duplicate receiver names", func(c *Config) {
			c.Outbound.Issuer = "https://v"
			c.Outbound.Receivers = []Receiver{{Name: "a", Endpoint: "https://r/1"}, {Name: "a", Endpoint: "https://r/2"}}
		}, "outbound.receivers[1].name: \"a\" is already used"},
		{"header injection in the authorization header", func(c *Config) {
			c.Outbound.Issuer = "https://v"
			c.Outbound.Receivers = []Receiver{{Name: "a", Endpoint: "https://r/1", AuthorizationHeader: "Bearer x\r\nX-Evil: 1"}}
		}, "outbound.receivers[0].authorization_header"},
		{"an unknown algorithm", func(c *Config) { c.Outbound.Algorithm = "HS256" }, "outbound.algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is reported under its key", func(t *testing.T) {
			var c Config
			tt.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("http to a loopback receiver is allowed", func(t *testing.T) {
		var c Config
		c.Outbound.Issuer = "https://v"
		c.Outbound.Receivers = []Receiver{{Name: "a", Endpoint: "http://127.0.0.1:9000/push"}}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigDecodesStrictly(t *testing.T) {
	doc := `
enabled: true
limits: {subjects: 1000, idle_ttl: 2h}
score: {medium: 30, high: 60, fade: 0}
detectors:
  request_rate: {enabled: false}
  enumeration: {threshold: 30, high_threshold: 90}
`
	var c Config
	if err := yaml.UnmarshalWithOptions([]byte(doc), &c, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := newRules(&c)
	if r.p[ruleRateAnomaly].on || !r.p[ruleEnumeration].on || *c.Score.Fade != 0 || c.Limits.Subjects != 1000 {
		t.Fatalf("decoded %+v", c)
	}
	if err := yaml.UnmarshalWithOptions([]byte("detectors: {rate: {}}"), &c, yaml.DisallowUnknownField()); err == nil {
		t.Fatal("an unknown detector name must be an error")
	}
}

// TestDocsDescribeEveryDetector keeps docs/risk.md in step with the
// detectors and the configuration keys.
func TestDocsDescribeEveryDetector(t *testing.T) {
	data, err := os.ReadFile("../../docs/risk.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, name := range DetectorNames() {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/risk.md does not describe %s", name)
		}
	}
	for _, key := range yamlKeys(reflect.TypeOf(Config{})) {
		if !regexp.MustCompile("[\\s`.]" + regexp.QuoteMeta(key) + "[`.:]").MatchString(doc) {
			t.Errorf("docs/risk.md does not mention the key %s", key)
		}
	}
}

// yamlKeys lists the yaml keys of a struct and of its struct fields.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		out = append(out, strings.Split(f.Tag.Get("yaml"), ",")[0])
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)):
			out = append(out, yamlKeys(ft)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, yamlKeys(ft.Elem())...)
		}
	}
	return out
}
