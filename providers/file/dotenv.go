package file

import (
	"bytes"
	"strings"
)

// ParseDotenv parses a dotenv file as bash-style dotenv loaders and docker
// --env-file users write them:
//
//	# comment lines and blank lines are ignored
//	export KEY=value           an "export " prefix is allowed
//	KEY=value  # comment       unquoted: to the end of the line, trimmed; " #" starts a comment
//	KEY='literal $x \n'        single quotes: literal, may span lines
//	KEY="a\nb \"q\" \\"        double quotes: \n \r \t \" \\ \$ \` escapes, may span lines
//
// Keys are [A-Za-z_][A-Za-z0-9_.-]*; spaces around '=' are allowed; a later
// assignment of a key replaces an earlier one. Variables are not expanded.
// Errors give the line and column and a fixed reason, never content.
func ParseDotenv(b []byte) (map[string]string, error) {
	m, err := parseDotenv(b)
	if err != nil {
		return nil, err
	}
	return m, nil
}

type dotenvParser struct {
	b    []byte
	i    int
	line int
	bol  int // offset of the current line's first byte
}

func (p *dotenvParser) fail(at int, reason string) *syntaxError {
	col := at - p.bol + 1
	return &syntaxError{Line: p.line, Column: col, Reason: reason}
}

func (p *dotenvParser) newline() {
	p.line++
	p.bol = p.i
}

func (p *dotenvParser) skipBlanks() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t') {
		p.i++
	}
}

func isKeyStart(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
}

func isKeyChar(c byte) bool {
	return isKeyStart(c) || c >= '0' && c <= '9' || c == '.' || c == '-'
}

func parseDotenv(in []byte) (map[string]string, *syntaxError) {
	p := &dotenvParser{b: bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")), line: 1}
	out := map[string]string{}
	for p.i < len(p.b) {
		p.skipBlanks()
		if p.i >= len(p.b) {
			break
		}
		switch p.b[p.i] {
		case '\n':
			p.i++
			p.newline()
			continue
		case '#':
			p.skipLine()
			continue
		}
		if rest := p.b[p.i:]; bytes.HasPrefix(rest, []byte("export")) && len(rest) > 6 && (rest[6] == ' ' || rest[6] == '\t') {
			p.i += 6
			p.skipBlanks()
		}
		start := p.i
		if p.i >= len(p.b) || !isKeyStart(p.b[p.i]) {
			return nil, p.fail(start, "expected a variable name")
		}
		for p.i < len(p.b) && isKeyChar(p.b[p.i]) {
			p.i++
		}
		key := string(p.b[start:p.i])
		p.skipBlanks()
		if p.i >= len(p.b) || p.b[p.i] != '=' {
			return nil, p.fail(p.i, "expected '=' after the variable name")
		}
		p.i++
		afterEq := p.i
		p.skipBlanks()
		var (
			val string
			err *syntaxError
		)
		switch {
		case p.i >= len(p.b) || p.b[p.i] == '\n':
			val = ""
		case p.b[p.i] == '\'':
			val, err = p.singleQuoted()
		case p.b[p.i] == '"':
			val, err = p.doubleQuoted()
		case p.b[p.i] == '#' && p.i > afterEq:
			// "KEY= # comment": an empty value, then a comment.
			p.skipLine()
			out[key] = ""
			continue
		default:
			val = p.unquoted()
		}
		if err != nil {
			return nil, err
		}
		if err := p.endOfLine(); err != nil {
			return nil, err
		}
		out[key] = val
	}
	return out, nil
}

// skipLine moves past the end of the current line.
func (p *dotenvParser) skipLine() {
	for p.i < len(p.b) && p.b[p.i] != '\n' {
		p.i++
	}
}

// endOfLine accepts blanks and an optional comment up to the line's end.
func (p *dotenvParser) endOfLine() *syntaxError {
	p.skipBlanks()
	if p.i < len(p.b) && p.b[p.i] == '#' {
		p.skipLine()
	}
	if p.i < len(p.b) && p.b[p.i] != '\n' {
		return p.fail(p.i, "unexpected text after the value")
	}
	return nil
}

func (p *dotenvParser) unquoted() string {
	start := p.i
	p.skipLine()
	v := p.b[start:p.i]
	for j := 1; j < len(v); j++ {
		if v[j] == '#' && (v[j-1] == ' ' || v[j-1] == '\t') {
			v = v[:j]
			break
		}
	}
	return strings.TrimRight(string(v), " \t")
}

func (p *dotenvParser) singleQuoted() (string, *syntaxError) {
	open := p.i
	openLine, openBol := p.line, p.bol
	p.i++
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '\'' {
		if p.b[p.i] == '\n' {
			p.i++
			p.newline()
			continue
		}
		p.i++
	}
	if p.i >= len(p.b) {
		return "", &syntaxError{Line: openLine, Column: open - openBol + 1, Reason: "unterminated single-quoted value"}
	}
	v := string(p.b[start:p.i])
	p.i++
	return v, nil
}

func (p *dotenvParser) doubleQuoted() (string, *syntaxError) {
	open := p.i
	openLine, openBol := p.line, p.bol
	p.i++
	var sb strings.Builder
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch c {
		case '"':
			p.i++
			return sb.String(), nil
		case '\n':
			sb.WriteByte(c)
			p.i++
			p.newline()
			continue
		case '\\':
			if p.i+1 >= len(p.b) {
				p.i++
				continue
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case '"', '\\', '$', '`':
				sb.WriteByte(e)
			case '\n':
				// A backslash-newline continues the line, as in bash.
				p.newline()
			default:
				sb.WriteByte('\\')
				sb.WriteByte(e)
			}
			continue
		}
		sb.WriteByte(c)
		p.i++
	}
	return "", &syntaxError{Line: openLine, Column: open - openBol + 1, Reason: "unterminated double-quoted value"}
}
