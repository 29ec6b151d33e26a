package sbpl

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	nodes, err := Parse("(version 1)\n; a comment (with \"parens\n(deny default (with message \"t\"))\n(allow file-read* (subpath \"/a\\\"b\\\\c\\nd\\x41\\101\\q\"))")
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 || nodes[0].Head() != "version" || nodes[1].Head() != "deny" || nodes[2].Head() != "allow" {
		t.Fatalf("structure: %+v", nodes)
	}
	if got := nodes[2].List[2].List[1].Text; got != "/a\"b\\c\ndAAq" {
		t.Fatalf("string read as %q", got)
	}
	if w := nodes[1].List[2]; w.Head() != "with" || w.List[2].Text != "t" || !w.List[2].IsString {
		t.Fatalf("modifier: %+v", w)
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{
		"(allow", "allow)", `(allow "x)`, `(a "\`, `(a #"raw")`, `(a 'q)`, "(a \"\x00\")", `(a "\x4")`,
		"((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
	} {
		t.Run(src, func(t *testing.T) {
			if _, err := Parse(src); !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): %v, want ErrSyntax", src, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"(version 1)", `(a "b\"c")`, "; c\n(x)", `(a "\x41\101")`, "(((", ")"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		nodes, err := Parse(src)
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Fatalf("error %v is not ErrSyntax", err)
		}
		for _, n := range nodes {
			_ = n.Head()
		}
	})
}
