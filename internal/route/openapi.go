package route

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// MaxOpenAPIBytes bounds the size of an OpenAPI document and of each file it
// references.
const MaxOpenAPIBytes = 16 << 20

// OpenAPI extensions read by ImportOpenAPI, on an operation or (for all its
// operations) on a path item; the operation's value wins.
const (
	// ExtResource sets the resource: {type: Todo, id: "{id}"}, same fields
	// and defaults as Resource.
	ExtResource = "x-vigil-resource"
	// ExtAnonymous (a boolean) marks operations that may be called without
	// a token, like Route.Anonymous.
	ExtAnonymous = "x-vigil-anonymous"
)

// New builds the route table for cfg: it validates cfg, imports cfg.OpenAPI
// when set and compiles everything. log may be nil.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Table, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var imported []Route
	if cfg.OpenAPI != "" {
		var err error
		imported, err = LoadOpenAPI(ctx, cfg.OpenAPI, cfg.OpenAPIBasePath)
		if err != nil {
			return nil, fmt.Errorf("openapi: %w", err)
		}
	}
	t, err := Compile(cfg, imported)
	if err != nil {
		return nil, err
	}
	for _, o := range t.overridden {
		log.Info("configured route replaces OpenAPI operation", "detail", o)
	}
	log.Debug("route table compiled", "routes", len(t.entries), "openapi_operations", len(imported))
	return t, nil
}

// LoadOpenAPI reads an OpenAPI 3 document (YAML or JSON) and imports its
// operations with ImportOpenAPI. External $refs may point only to files in
// the document's directory or below; URLs are refused.
func LoadOpenAPI(ctx context.Context, path, basePath string) ([]Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	loader := openapi3.NewLoader()
	loader.Context = ctx
	loader.IsExternalRefsAllowed = true
	loader.ReadFromURIFunc = localRefs(filepath.Dir(abs))
	doc, err := loader.LoadFromDataWithPath(data, &url.URL{Path: filepath.ToSlash(abs)})
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", path, err)
	}
	routes, err := ImportOpenAPI(doc, basePath)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	name := filepath.Base(path)
	for i := range routes {
		routes[i].origin = name + " " + routes[i].origin
	}
	return routes, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxOpenAPIBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	if len(data) > MaxOpenAPIBytes {
		return nil, fmt.Errorf("read %q: larger than %d bytes", path, MaxOpenAPIBytes)
	}
	return data, nil
}

// localRefs reads $ref targets that are files under root, nothing else.
func localRefs(root string) openapi3.ReadFromURIFunc {
	return func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		if (u.Scheme != "" && u.Scheme != "file") || u.Host != "" {
			return nil, fmt.Errorf("$ref %q: only files beside the OpenAPI document may be referenced", u.Redacted())
		}
		p, err := filepath.Abs(filepath.FromSlash(u.Path))
		if err != nil {
			return nil, fmt.Errorf("$ref %q: %w", u.Path, err)
		}
		if rel, err := filepath.Rel(root, p); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("$ref %q: outside the OpenAPI document's directory", u.Path)
		}
		return readLimited(p)
	}
}

// ImportOpenAPI turns the operations of an OpenAPI 3 document into routes,
// sorted by path and method:
//
//   - path: basePath + the OpenAPI path; parameters must span whole
//     segments ("/files/{name}.{ext}" is an error; configure such routes
//     explicitly). "{name...}" is refused: OpenAPI has no rest parameters.
//   - action: the operationId when present, else "METHOD /path".
//   - resource: x-vigil-resource of the operation, else of the path item,
//     else the Resource defaults (Route::"<path template>").
//   - anonymous: x-vigil-anonymous of the operation, else of the path item,
//     else false. OpenAPI security requirements are not interpreted.
func ImportOpenAPI(doc *openapi3.T, basePath string) ([]Route, error) {
	if doc == nil {
		return nil, errors.New("no document")
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fmt.Errorf("openapi version %q: only OpenAPI 3.x documents are supported", doc.OpenAPI)
	}
	if err := checkBasePath(basePath); err != nil {
		return nil, fmt.Errorf("base path %q: %w", basePath, err)
	}
	if doc.Paths == nil {
		return nil, nil
	}
	var routes []Route
	keys := doc.Paths.Keys()
	slices.Sort(keys)
	for _, p := range keys {
		item := doc.Paths.Value(p)
		if item == nil {
			continue
		}
		where := fmt.Sprintf("paths[%q]", p)
		if strings.Contains(p, "...}") {
			return nil, fmt.Errorf("%s: OpenAPI has no rest parameters; configure routes with {name...} in routes", where)
		}
		itemRes, _, err := extResource(item.Extensions)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", where, ExtResource, err)
		}
		itemAnon, _, err := extBool(item.Extensions, ExtAnonymous)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", where, ExtAnonymous, err)
		}
		ops := item.Operations()
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, m)
		}
		slices.Sort(methods)
		for _, m := range methods {
			op := ops[m]
			opWhere := where + "." + strings.ToLower(m)
			r := Route{
				Method:    Methods{m},
				Path:      basePath + p,
				Action:    op.OperationID,
				Resource:  itemRes,
				Anonymous: itemAnon,
				origin:    opWhere,
			}
			if res, ok, err := extResource(op.Extensions); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", opWhere, ExtResource, err)
			} else if ok {
				r.Resource = res
			}
			if anon, ok, err := extBool(op.Extensions, ExtAnonymous); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", opWhere, ExtAnonymous, err)
			} else if ok {
				r.Anonymous = anon
			}
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// extResource decodes x-vigil-resource strictly. kin-openapi stores
// extension values as decoded JSON; re-encoding them is the simplest way to
// apply strict struct decoding.
func extResource(ext map[string]any) (Resource, bool, error) {
	v, ok := ext[ExtResource]
	if !ok {
		return Resource{}, false, nil
	}
	raw, err := extJSON(v)
	if err != nil {
		return Resource{}, false, err
	}
	var res struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		return Resource{}, false, fmt.Errorf("want {type: <Cedar type>, id: <id or {param}>}: %w", err)
	}
	if res.Type == "" {
		return Resource{}, false, errors.New("type is required")
	}
	return Resource{Type: res.Type, ID: res.ID}, true, nil
}

func extBool(ext map[string]any, key string) (value, ok bool, err error) {
	v, ok := ext[key]
	if !ok {
		return false, false, nil
	}
	raw, err := extJSON(v)
	if err != nil {
		return false, false, err
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return false, false, errors.New("want true or false")
	}
	return value, true, nil
}

func extJSON(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("unreadable value: %w", err)
	}
	return raw, nil
}
