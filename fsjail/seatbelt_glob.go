package fsjail

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// globRegexes returns the regular expressions that match what a deny pattern denies (one,
// today): every
// path the pattern matches below its fixed directory prefix, and everything beneath such a
// path. They match the paths that Expand would return if they existed (without Expand's
// restriction to the working directory, which only saves walking), with ASCII letters
// matching in either case. rest holds the pattern's components after the prefix, with
// repeated "**" collapsed (see splitPattern).
//
// The expressions use a small part of POSIX extended regular expressions, whose meaning
// does not differ between engines: anchors, escaped metacharacters, bracket expressions of
// plain characters, "[^/]", "*", "+" and groups with "|". A component "**" is "(/[^/]+)*",
// any number of components (at least one if the pattern has nothing else). A name with a
// NUL byte or "/" cannot occur, so nothing else is needed.
func globRegexes(prefix string, rest []string) ([]string, error) {
	var b strings.Builder
	b.WriteByte('^')
	if prefix != "/" {
		b.WriteString(regexLiteral(prefix, true))
	}
	onlyStars := true
	for _, c := range rest {
		if c != "**" {
			onlyStars = false
		}
	}
	for _, c := range rest {
		if c == "**" {
			if onlyStars {
				b.WriteString("(/[^/]+)+")
			} else {
				b.WriteString("(/[^/]+)*")
			}
			continue
		}
		b.WriteByte('/')
		ok, err := globComponent(&b, c)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil // the component matches no name
		}
	}
	return []string{b.String() + treeSuffix}, nil
}

// globComponent writes the regular expression of one component of a pattern, in the syntax
// of path/filepath.Match: "*", "?", "[...]" (with "^" for negation, ranges, and "\" to
// escape), "\" escaping any character. It reports false if the component matches no name
// at all (a class of "/" alone).
func globComponent(b *strings.Builder, c string) (bool, error) {
	for i := 0; i < len(c); {
		switch c[i] {
		case '*':
			b.WriteString("[^/]*")
			for i < len(c) && c[i] == '*' {
				i++
			}
		case '?':
			b.WriteString("[^/]")
			i++
		case '[':
			n, ok, err := globClass(b, c[i:])
			if err != nil {
				return false, err
			}
			if !ok {
				return false, nil
			}
			i += n
		case '\\':
			if i+1 >= len(c) {
				return false, fmt.Errorf("%w: %q ends with a backslash", ErrBadPattern, c)
			}
			_, n := utf8.DecodeRuneInString(c[i+1:])
			b.WriteString(regexLiteral(c[i+1:i+1+n], true))
			i += 1 + n
		default:
			writeRegexByte(b, c[i], true)
			i++
		}
	}
	return true, nil
}

// classSpecial are the characters that a bracket expression reads differently in some
// engines (a backslash escapes in some and not in others; "[" may open "[:alpha:]"; "]"
// first in a class; "^" first). They are written outside brackets, escaped.
const classSpecial = `\[]^`

// globClass writes the regular expression of the character class at the start of s and
// returns how many bytes of s it took. Go's pattern syntax is parsed exactly as
// path/filepath.Match does. A class matches one character of a name, so it never matches
// "/"; with ASCII letters it matches them in either case.
//
// A class with non-ASCII characters becomes an alternation of them (a range of non-ASCII
// characters cannot be written without knowing whether the engine reads bytes or
// characters, and is refused, as is a negated class with non-ASCII characters or with one
// of classSpecial).
func globClass(b *strings.Builder, s string) (n int, ok bool, err error) {
	bad := func(why string) (int, bool, error) {
		return 0, false, fmt.Errorf("%w: class %q: %s", ErrBadPattern, s, why)
	}
	i := 1
	negated := false
	if i < len(s) && s[i] == '^' {
		negated = true
		i++
	}
	type rng struct{ lo, hi rune }
	var ranges []rng
	getEsc := func() (rune, error) {
		if i >= len(s) || s[i] == '-' || s[i] == ']' {
			return 0, ErrBadPattern
		}
		if s[i] == '\\' {
			i++
			if i >= len(s) {
				return 0, ErrBadPattern
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return 0, ErrBadPattern
		}
		i += size
		if i >= len(s) {
			return 0, ErrBadPattern // unterminated
		}
		return r, nil
	}
	for {
		if i < len(s) && s[i] == ']' && len(ranges) > 0 {
			i++
			break
		}
		lo, err := getEsc()
		if err != nil {
			return bad("malformed")
		}
		hi := lo
		if s[i] == '-' {
			i++
			if hi, err = getEsc(); err != nil {
				return bad("malformed")
			}
		}
		ranges = append(ranges, rng{lo, hi})
	}

	var set [128]bool // the ASCII characters the class names
	var wide []rune   // the non-ASCII characters it names
	for _, r := range ranges {
		if r.lo > r.hi {
			continue // an empty range, as in filepath.Match
		}
		if r.hi >= utf8.RuneSelf {
			if r.lo != r.hi {
				return bad("a range of non-ASCII characters cannot be expressed in a macOS sandbox profile")
			}
			wide = append(wide, r.lo)
			continue
		}
		for c := r.lo; c <= r.hi; c++ {
			set[c] = true
		}
	}
	set[0], set['/'] = false, false
	for c := byte('A'); c <= 'Z'; c++ {
		if set[c] || set[c+'a'-'A'] {
			set[c], set[c+'a'-'A'] = true, true
		}
	}

	if negated {
		if len(wide) > 0 {
			return bad("a negated class with non-ASCII characters cannot be expressed in a macOS sandbox profile")
		}
		for _, c := range []byte(`\[]`) {
			if set[c] {
				return bad(`a negated class with "\", "[" or "]" cannot be expressed in a macOS sandbox profile`)
			}
		}
		b.WriteString("[^/")
		writeBracketMembers(b, &set)
		if set['^'] {
			b.WriteByte('^')
		}
		if set['-'] {
			b.WriteByte('-')
		}
		b.WriteByte(']')
		return i, true, nil
	}

	var alts []string
	members := 0
	for c := 1; c < 128; c++ {
		if set[c] && !strings.ContainsRune(classSpecial, rune(c)) {
			members++
		}
	}
	if members == 1 && !set['-'] {
		// A single character needs no brackets.
		for c := 1; c < 128; c++ {
			if set[c] && !strings.ContainsRune(classSpecial, rune(c)) {
				alts = append(alts, regexLiteral(string(rune(c)), false))
			}
		}
	} else if members > 0 {
		var br strings.Builder
		br.WriteByte('[')
		writeBracketMembers(&br, &set)
		if set['-'] {
			br.WriteByte('-')
		}
		br.WriteByte(']')
		alts = append(alts, br.String())
	}
	for _, c := range []byte(classSpecial) {
		if set[c] {
			alts = append(alts, `\`+string(c))
		}
	}
	for _, r := range wide {
		alts = append(alts, string(r))
	}
	switch len(alts) {
	case 0:
		return i, false, nil
	case 1:
		b.WriteString(alts[0])
	default:
		b.WriteString("(" + strings.Join(alts, "|") + ")")
	}
	return i, true, nil
}

// writeBracketMembers writes the characters of set that may stand anywhere inside brackets
// in every engine: not classSpecial and not "-", which the caller places last. Runs of
// three or more letters or digits become ranges.
func writeBracketMembers(b *strings.Builder, set *[128]bool) {
	plain := func(c int) bool {
		return set[c] && c != '-' && !strings.ContainsRune(classSpecial, rune(c))
	}
	for c := 1; c < 128; c++ {
		if !plain(c) {
			continue
		}
		end := c
		if isAlnum(byte(c)) {
			for end+1 < 128 && plain(end+1) && sameKind(byte(c), byte(end+1)) {
				end++
			}
		}
		if end-c >= 2 {
			b.WriteString(string(rune(c)) + "-" + string(rune(end)))
			c = end
			continue
		}
		b.WriteByte(byte(c))
	}
}

// sameKind reports whether two characters are both digits, both lower-case or both
// upper-case letters.
func sameKind(a, b byte) bool {
	switch {
	case isDigit(a):
		return isDigit(b)
	case a >= 'a' && a <= 'z':
		return b >= 'a' && b <= 'z'
	case a >= 'A' && a <= 'Z':
		return b >= 'A' && b <= 'Z'
	}
	return false
}
