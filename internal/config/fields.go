package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Field is one leaf setting of Config.
type Field struct {
	Path  string // YAML path, e.g. bus.embedded.data_dir
	Flag  string // flag name, e.g. bus.embedded.data-dir
	Alias string // optional short flag name, e.g. data-dir
	Env   string // environment variable, e.g. FAULTLINE_BUS_EMBEDDED_DATA_DIR
	Doc   string
	Type  string // for documentation
	// YAMLOnly marks settings that only the YAML file can hold: lists of
	// objects, maps, and the fields of a list's items (Path has "[]" for
	// the item, e.g. collectors.metrics.scrape.targets[].url). They have no
	// flag and no environment variable.
	YAMLOnly bool
	index    []int // nil for the fields of a list's items
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	durationsType   = reflect.TypeOf([]time.Duration(nil))
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// Fields lists every leaf setting in declaration order.
func Fields() []Field {
	var out []Field
	walk(reflect.TypeOf(Config{}), nil, "", &out)
	return out
}

func walk(t reflect.Type, index []int, prefix string, out *[]Field) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if isStruct(sf.Type) {
			walk(sf.Type, idx, path, out)
			continue
		}
		if yamlOnly(sf.Type) {
			*out = append(*out, Field{Path: path, Doc: sf.Tag.Get("doc"), Type: typeName(sf.Type), YAMLOnly: true, index: idx})
			if sf.Type.Kind() == reflect.Slice && isStruct(sf.Type.Elem()) {
				walkItems(sf.Type.Elem(), path+"[]", out)
			}
			continue
		}
		*out = append(*out, Field{
			Path:  path,
			Flag:  strings.ReplaceAll(path, "_", "-"),
			Alias: sf.Tag.Get("flag"),
			Env:   envName(path),
			Doc:   sf.Tag.Get("doc"),
			Type:  typeName(sf.Type),
			index: idx,
		})
	}
}

// walkItems documents the fields of a list's items: YAML-only, not
// addressable in Config (index nil).
func walkItems(t reflect.Type, prefix string, out *[]Field) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + "." + name
		switch {
		case isStruct(sf.Type):
			walkItems(sf.Type, path, out)
		default:
			*out = append(*out, Field{Path: path, Doc: sf.Tag.Get("doc"), Type: typeName(sf.Type), YAMLOnly: true})
			if sf.Type.Kind() == reflect.Slice && isStruct(sf.Type.Elem()) {
				walkItems(sf.Type.Elem(), path+"[]", out)
			}
		}
	}
}

func isStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshaler)
}

// yamlOnly tells whether a flag or environment string cannot express a value
// of t: lists of objects and maps.
func yamlOnly(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Map:
		return true
	case reflect.Slice:
		return isStruct(t.Elem())
	}
	return false
}

// envName is the environment variable a setting at path would have.
func envName(path string) string {
	return "FAULTLINE_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

func typeName(t reflect.Type) string {
	switch {
	case t.Kind() == reflect.Slice && isStruct(t.Elem()):
		return "list of objects"
	case t.Kind() == reflect.Map:
		return "map of " + t.Key().Kind().String() + " to " + t.Elem().Kind().String()
	case t == durationType:
		return "duration"
	case t == durationsType:
		return "list of durations"
	case t == reflect.TypeOf(ByteSize(0)):
		return "size"
	case t.Kind() == reflect.Slice:
		return "list of " + t.Elem().Kind().String() + "s"
	}
	return t.Kind().String()
}

// Set parses raw (a flag or environment value) into the field of c.
// Lists are comma-separated.
func (f Field) Set(c *Config, raw string) error {
	if f.YAMLOnly {
		return fmt.Errorf("%s: a %s is set in the YAML file only", f.Path, f.Type)
	}
	v := reflect.ValueOf(c).Elem().FieldByIndex(f.index)
	if err := setValue(v, raw); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// Get formats the field of c like a flag value.
// YAML-only settings show how many items they hold ("" when none).
func (f Field) Get(c *Config) string {
	if f.index == nil {
		return ""
	}
	v := reflect.ValueOf(c).Elem().FieldByIndex(f.index)
	if f.YAMLOnly {
		if v.Len() == 0 {
			return ""
		}
		return fmt.Sprintf("%d items", v.Len())
	}
	return formatValue(v)
}

func setValue(v reflect.Value, raw string) error {
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(raw))
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid duration %q (examples: 500ms, 30s, 168h)", raw)
		}
		v.SetInt(int64(d))
		return nil
	case v.Kind() == reflect.Slice:
		parts := []string{}
		if strings.TrimSpace(raw) != "" {
			parts = strings.Split(raw, ",")
		}
		s := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := setValue(s.Index(i), strings.TrimSpace(p)); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		v.Set(s)
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid boolean %q (true or false)", raw)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", raw)
		}
		v.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", raw)
		}
		v.SetFloat(x)
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}

func formatValue(v reflect.Value) string {
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range v.Len() {
			parts[i] = formatValue(v.Index(i))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}
