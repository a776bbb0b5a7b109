package ci

import (
	"fmt"
	"strings"
)

// ParseGitHubFile reads a $GITHUB_ENV or $GITHUB_OUTPUT file by the rules
// GitHub documents for it and its Linux runner applies: lines end at \n
// only; an empty line is skipped; a line is NAME=VALUE when its first "="
// comes before its first "<<", else NAME<<DELIMITER, whose value is every
// byte up to the \n that precedes the first later line equal to DELIMITER
// (a missing delimiter, an empty name or an empty delimiter is an error). A
// later definition of a name replaces the earlier one. keyward does not
// read these files itself: ParseGitHubFile is the reference against which
// its output is tested, written from the runner's rules, not from
// FormatGitHubFile.
func ParseGitHubFile(text string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	readLine := func() (string, bool) {
		if i >= len(text) {
			return "", false
		}
		j := strings.IndexByte(text[i:], '\n')
		if j < 0 {
			line := text[i:]
			i = len(text)
			return line, true
		}
		line := text[i : i+j]
		i += j + 1
		return line, true
	}
	for {
		line, ok := readLine()
		if !ok {
			return out, nil
		}
		if line == "" {
			continue
		}
		eq, hd := strings.Index(line, "="), strings.Index(line, "<<")
		switch {
		case eq >= 0 && (hd < 0 || eq < hd):
			if eq == 0 {
				return nil, fmt.Errorf("empty name in %q", line)
			}
			out[line[:eq]] = line[eq+1:]
		case hd >= 0 && (eq < 0 || hd < eq):
			name, delim := line[:hd], line[hd+2:]
			if name == "" || delim == "" {
				return nil, fmt.Errorf("empty name or delimiter in %q", line)
			}
			start, end := i, i
			for {
				l, ok := readLine()
				if !ok {
					return nil, fmt.Errorf("matching delimiter not found for %s", name)
				}
				if l == delim {
					break
				}
				end = i - 1 // before this line's \n (a last line without one fails above)
			}
			value := ""
			if end > start {
				value = text[start:end]
			}
			out[name] = value
		default:
			return nil, fmt.Errorf("invalid line %q", line)
		}
	}
}
