package jailinit

import (
	"errors"
	"reflect"
	"testing"
)

// fill sets every exported field reachable from v to a non-zero value, so that a field the
// wire form forgets shows up as a round-trip difference.
func fill(t *testing.T, v reflect.Value, seed *int) {
	*seed++
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*seed % 60000))
	case reflect.Uint8, reflect.Uint16, reflect.Uint64:
		v.SetUint(uint64(*seed % 250))
	case reflect.String:
		v.SetString("s\x00\"é" + string(rune('a'+*seed%26)))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(t, s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), seed)
		v.Set(p)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			fill(t, v.Field(i), seed)
		}
	default:
		t.Fatalf("fill: kind %s (%s) not handled; teach the wire form and this test", v.Kind(), v.Type())
	}
}

func TestWireRoundTrip(t *testing.T) {
	var in Config
	seed := 0
	fill(t, reflect.ValueOf(&in).Elem(), &seed)
	var out Config
	if err := out.Unmarshal(in.Marshal()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip differs:\n in  %+v\n out %+v\n plan in %+v\n plan out %+v", in, out, *in.Plan, *out.Plan)
	}
	var zero, back Config
	if err := back.Unmarshal(zero.Marshal()); err != nil || !reflect.DeepEqual(zero, back) {
		t.Errorf("zero config: %v %+v", err, back)
	}
}

func TestWireErrors(t *testing.T) {
	var in Config
	seed := 0
	fill(t, reflect.ValueOf(&in).Elem(), &seed)
	b := in.Marshal()
	for _, bad := range [][]byte{nil, b[:len(b)/2], append(append([]byte{}, b...), 0), {2}, {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}} {
		var c Config
		if err := c.Unmarshal(bad); !errors.Is(err, ErrWire) {
			t.Errorf("Unmarshal(%d bytes) error = %v, want ErrWire", len(bad), err)
		}
	}
}

// FuzzWire checks that arbitrary bytes never panic the helper's decoder, and that whatever
// decodes encodes back to the same bytes.
func FuzzWire(f *testing.F) {
	var in Config
	seed := 0
	fill(&testing.T{}, reflect.ValueOf(&in).Elem(), &seed)
	f.Add(in.Marshal())
	f.Add((&Config{}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if err := c.Unmarshal(b); err != nil {
			return
		}
		if again := c.Marshal(); string(again) != string(b) {
			var d Config
			if err := d.Unmarshal(again); err != nil || !reflect.DeepEqual(c, d) {
				t.Fatalf("re-encoding changed the configuration: %v", err)
			}
		}
	})
}
