// Package sbpl reads macOS sandbox profiles (SBPL, the Scheme dialect of sandbox-exec) the
// way the TinyScheme reader inside libsandbox reads them: lists, symbols, string literals
// with their escapes, and comments. cordon uses it to check the profiles it writes before
// they are used, and its tests use it to prove that nothing in a path can break out of the
// string it is written in. It does not evaluate anything.
package sbpl

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrSyntax: the text is not a well-formed sequence of expressions.
var ErrSyntax = errors.New("sbpl: syntax error")

// Node is one expression: a list, a string literal or a symbol (any other atom, numbers
// included).
type Node struct {
	// List holds the elements of a list; nil for an atom.
	List []Node
	// IsList tells a list (possibly empty) from an atom.
	IsList bool
	// IsString tells a string literal from a symbol.
	IsString bool
	// Text is the value of a string literal (escapes read) or the name of a symbol.
	Text string
	// Offset is where the expression starts in the text.
	Offset int
}

// Head returns the symbol a list starts with, or "".
func (n Node) Head() string {
	if !n.IsList || len(n.List) == 0 || n.List[0].IsList || n.List[0].IsString {
		return ""
	}
	return n.List[0].Text
}

// Parse reads every expression of src. String literals are read as TinyScheme reads them:
// a backslash followed by n, t or r is a newline, tab or carriage return, by x and two hex
// digits the byte they name, by up to three octal digits the byte they name, and by any
// other character that character; every other byte stands for itself.
func Parse(src string) ([]Node, error) {
	p := &parser{src: src}
	var out []Node
	for {
		p.skip()
		if p.i >= len(p.src) {
			return out, nil
		}
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
}

type parser struct {
	src   string
	i     int
	depth int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, p.i, fmt.Sprintf(format, args...))
}

// skip passes white space and comments.
func (p *parser) skip() {
	for p.i < len(p.src) {
		switch c := p.src[p.i]; {
		case c == ';':
			for p.i < len(p.src) && p.src[p.i] != '\n' {
				p.i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.i++
		default:
			return
		}
	}
}

const maxDepth = 64

func (p *parser) expr() (Node, error) {
	start := p.i
	switch c := p.src[p.i]; c {
	case '(':
		if p.depth++; p.depth > maxDepth {
			return Node{}, p.errorf("lists nested more than %d deep", maxDepth)
		}
		p.i++
		n := Node{IsList: true, Offset: start}
		for {
			p.skip()
			if p.i >= len(p.src) {
				return Node{}, p.errorf("list opened at byte %d is not closed", start)
			}
			if p.src[p.i] == ')' {
				p.i++
				p.depth--
				return n, nil
			}
			e, err := p.expr()
			if err != nil {
				return Node{}, err
			}
			n.List = append(n.List, e)
		}
	case ')':
		return Node{}, p.errorf("unexpected )")
	case '"':
		s, err := p.str()
		return Node{IsString: true, Text: s, Offset: start}, err
	case '#', '\'', '`', ',':
		// Raw strings (#"..."), quoting and the like: cordon writes none of them.
		return Node{}, p.errorf("unsupported %q", c)
	default:
		for p.i < len(p.src) && !delimiter(p.src[p.i]) {
			p.i++
		}
		return Node{Text: p.src[start:p.i], Offset: start}, nil
	}
}

func delimiter(c byte) bool {
	switch c {
	case '(', ')', '"', ';', ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}

func (p *parser) str() (string, error) {
	start := p.i
	p.i++ // the opening quote
	var b []byte
	for {
		if p.i >= len(p.src) {
			return "", p.errorf("string opened at byte %d is not closed", start)
		}
		c := p.src[p.i]
		p.i++
		switch c {
		case '"':
			return string(b), nil
		case 0:
			return "", p.errorf("NUL byte in a string")
		case '\\':
			if p.i >= len(p.src) {
				return "", p.errorf("string opened at byte %d is not closed", start)
			}
			e := p.src[p.i]
			p.i++
			switch {
			case e == 'n':
				b = append(b, '\n')
			case e == 't':
				b = append(b, '\t')
			case e == 'r':
				b = append(b, '\r')
			case e == 'x' || e == 'X':
				if p.i+2 > len(p.src) {
					return "", p.errorf("short \\x escape")
				}
				v, err := strconv.ParseUint(p.src[p.i:p.i+2], 16, 8)
				if err != nil {
					return "", p.errorf("bad \\x escape")
				}
				b = append(b, byte(v))
				p.i += 2
			case e >= '0' && e <= '7':
				v := int(e - '0')
				for k := 0; k < 2 && p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '7'; k++ {
					v = v*8 + int(p.src[p.i]-'0')
					p.i++
				}
				b = append(b, byte(v))
			default:
				b = append(b, e)
			}
		default:
			b = append(b, c)
		}
	}
}
