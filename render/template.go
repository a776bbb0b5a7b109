package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/keyward/keyward/providers"
)

// tmplName is the name templates are parsed under; it only appears in
// text/template's messages, which are rewritten to "line N: ...".
const tmplName = "t"

// missingSecretError is returned by the secret template function.
type missingSecretError struct{ name string }

func (e *missingSecretError) Error() string { return fmt.Sprintf("secret %q not resolved", e.name) }

// templateFuncs are the helpers a template may call:
//
//	secret "NAME"  the secret's value as a string; an error naming NAME if it
//	               was not resolved
//	base64 S       standard base64 (with padding) of S
//	json S         S as a JSON string literal, quotes included
//
// The values are reachable only through secret: the template's dot is an
// empty map, so no value can show up in an error about dot.
func templateFuncs(secrets map[string]providers.Resolved) template.FuncMap {
	return template.FuncMap{
		"secret": func(name string) (string, error) {
			r, ok := secrets[name]
			if !ok {
				return "", &missingSecretError{name: name}
			}
			return r.Value.Reveal(), nil
		},
		"base64": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"json": func(s string) string {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return strings.TrimSuffix(b.String(), "\n")
		},
	}
}

// parseTemplate parses text with the helper functions (secrets may be nil
// when only the parse tree is wanted). Errors are *TemplateError.
func parseTemplate(text string, secrets map[string]providers.Resolved) (*template.Template, error) {
	t, err := template.New(tmplName).Option("missingkey=error").Funcs(templateFuncs(secrets)).Parse(text)
	if err != nil {
		return nil, parseError(err.Error())
	}
	return t, nil
}

// TemplateError is a template that does not parse. Its message is
// "line N: reason", without text/template's internal template name.
type TemplateError struct {
	// Line is the template line (1-based) where the problem was found.
	Line int
	// Start is the line of the action the problem is part of, when
	// text/template names one ("unclosed action started at ..."); else 0.
	Start int
	// Reason is text/template's reason, without a line or the start.
	Reason string
}

func (e *TemplateError) Error() string {
	msg := fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	if e.Start > 0 {
		msg += fmt.Sprintf(" started at line %d", e.Start)
	}
	return msg
}

// templateErrRE splits text/template's "template: t:LINE[:COL]: rest".
var templateErrRE = regexp.MustCompile(`^template: ` + tmplName + `:(\d+)(?::\d+)?: (.*)$`)

// templateStartRE finds the " started at t:LINE" of an unclosed action.
var templateStartRE = regexp.MustCompile(` started at ` + tmplName + `:(\d+)$`)

// parseError turns a text/template parse message into a *TemplateError.
func parseError(msg string) *TemplateError {
	m := templateErrRE.FindStringSubmatch(msg)
	if m == nil {
		return &TemplateError{Line: 1, Reason: strings.TrimPrefix(msg, "template: ")}
	}
	e := &TemplateError{Reason: m[2]}
	e.Line, _ = strconv.Atoi(m[1])
	if s := templateStartRE.FindStringSubmatchIndex(e.Reason); s != nil {
		e.Start, _ = strconv.Atoi(e.Reason[s[2]:s[3]])
		e.Reason = e.Reason[:s[0]]
	}
	return e
}

// templateMessage rewrites a text/template execution message to "line N:
// rest", dropping the internal template name and the `executing "t" at`
// noise.
func templateMessage(msg string) string {
	m := templateErrRE.FindStringSubmatch(msg)
	if m == nil {
		return strings.TrimPrefix(msg, "template: ")
	}
	rest := strings.TrimPrefix(m[2], `executing "`+tmplName+`" `)
	return "line " + m[1] + ": " + rest
}

// SecretUse is one call of the secret function in a template.
type SecretUse struct {
	// Name is the secret name when the template spells it out as a
	// string literal: {{ secret "NAME" }} or {{ "NAME" | secret }}.
	// It is "" when Dynamic.
	Name string
	// Line is the template line (1-based) of the call.
	Line int
	// Dynamic is set when the name is computed when the template runs
	// ({{ secret .x }}, {{ secret (printf "%s" "A") }}, {{ $n | secret }}):
	// the call may then use any secret.
	Dynamic bool
}

// TemplateSecrets parses a template (the text of a file of format
// template) and returns its calls of secret in source order, in every
// template it defines. It is the one reading of a template's secret names:
// the config's validation, the dependencies of a file (File.SecretNames)
// and the check before a template runs all use it. A template that does not
// parse is a *TemplateError.
func TemplateSecrets(text string) ([]SecretUse, error) {
	t, err := parseTemplate(text, nil)
	if err != nil {
		return nil, err
	}
	return templateSecretUses(t), nil
}

// walkTemplate calls visit for every node of every template that t
// defines, with the tree it belongs to: each pipeline before the commands
// in it, each command before its arguments.
func walkTemplate(t *template.Template, visit func(tree *parse.Tree, n parse.Node)) {
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		var walk func(n parse.Node)
		walk = func(n parse.Node) {
			switch n := n.(type) {
			case *parse.ListNode:
				if n == nil {
					return
				}
				for _, c := range n.Nodes {
					walk(c)
				}
			case *parse.ActionNode:
				walk(n.Pipe)
			case *parse.IfNode:
				walk(n.Pipe)
				walk(n.List)
				walk(n.ElseList)
			case *parse.RangeNode:
				walk(n.Pipe)
				walk(n.List)
				walk(n.ElseList)
			case *parse.WithNode:
				walk(n.Pipe)
				walk(n.List)
				walk(n.ElseList)
			case *parse.TemplateNode:
				walk(n.Pipe)
			case *parse.PipeNode:
				if n == nil {
					return
				}
				visit(tt.Tree, n)
				for _, c := range n.Cmds {
					walk(c)
				}
			case *parse.ChainNode:
				walk(n.Node)
			case *parse.CommandNode:
				visit(tt.Tree, n)
				for _, a := range n.Args {
					walk(a)
				}
			case *parse.StringNode:
				visit(tt.Tree, n)
			}
		}
		walk(tt.Root)
	}
}

// templateSecretUses lists the secret calls in every template that t
// defines, in source order: with a literal name when the template spells
// it out ({{ secret "A" }}, {{ "A" | secret }}), as dynamic when the name
// is computed.
func templateSecretUses(t *template.Template) []SecretUse {
	var uses []SecretUse
	walkTemplate(t, func(tree *parse.Tree, node parse.Node) {
		pipe, ok := node.(*parse.PipeNode)
		if !ok {
			return
		}
		for i, cmd := range pipe.Cmds {
			for j, a := range cmd.Args {
				if id, ok := a.(*parse.IdentifierNode); !ok || id.Ident != "secret" {
					continue
				}
				use := SecretUse{Line: nodeLine(tree, cmd), Dynamic: true}
				switch {
				case j > 0: // secret handed to another function
				case i == 0 && len(cmd.Args) == 2: // secret X
					if s, ok := cmd.Args[1].(*parse.StringNode); ok {
						use.Name, use.Dynamic = s.Text, false
					}
				case i > 0 && len(cmd.Args) == 1: // X | secret
					if prev := pipe.Cmds[i-1]; len(prev.Args) == 1 {
						if s, ok := prev.Args[0].(*parse.StringNode); ok {
							use.Name, use.Dynamic = s.Text, false
						}
					}
				}
				uses = append(uses, use)
			}
		}
	})
	return uses
}

// templateLiterals returns the string literals of every template that t
// defines: the only text of the template a message may quote, as it is the
// template's own source.
func templateLiterals(t *template.Template) map[string]bool {
	out := map[string]bool{}
	walkTemplate(t, func(_ *parse.Tree, n parse.Node) {
		if s, ok := n.(*parse.StringNode); ok {
			out[s.Text] = true
		}
	})
	return out
}

func nodeLine(tree *parse.Tree, n parse.Node) int {
	loc, _ := tree.ErrorContext(n) // "t:LINE:COL"
	parts := strings.Split(loc, ":")
	if len(parts) >= 3 {
		if l, err := strconv.Atoi(parts[len(parts)-2]); err == nil {
			return l
		}
	}
	return 0
}

// leakyExecErrors are text/template execution messages that print a
// runtime value (%v of the operand), which may be derived from a secret.
var leakyExecErrors = []string{
	"can't use ", "can't iterate over", "range over", "non-comparable", "error calling call",
}

// buildTemplate executes the template. Every secret "NAME" with a literal
// name that is not resolved is reported at once, with its line, before
// executing. An execution error keeps its line and node; its reason is
// withheld when it could carry secret data.
func buildTemplate(text string, secrets map[string]providers.Resolved) ([]byte, error) {
	t, err := parseTemplate(text, secrets)
	if err != nil {
		return nil, err
	}
	var missing []string
	reported := map[string]bool{}
	for _, u := range templateSecretUses(t) {
		if u.Dynamic {
			continue // checked when the template runs
		}
		if _, ok := secrets[u.Name]; !ok && !reported[u.Name] {
			reported[u.Name] = true
			missing = append(missing, fmt.Sprintf("line %d: secret %q not resolved", u.Line, u.Name))
		}
	}
	if len(missing) > 0 {
		return nil, errors.New(strings.Join(missing, ", "))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]any{}); err != nil {
		return nil, execError(err, templateLiterals(t), secrets)
	}
	return b.Bytes(), nil
}

// execError turns a text/template execution error into a message that can
// never contain secret data. A missing secret is named only when its name is
// one of the template's string literals (literals, the template's own
// source, are all a message may quote): a name computed from anything else
// ({{ secret "DB" | printf "%x" | secret }}) may be a value in disguise and
// is withheld. A reason that prints a runtime value, or that contains any
// secret value (or its base64 or JSON form), is withheld and only its line
// and node remain.
func execError(err error, literals map[string]bool, secrets map[string]providers.Resolved) error {
	msg := templateMessage(err.Error())
	var ms *missingSecretError
	if errors.As(err, &ms) {
		// Every literal name was checked before executing, so this one was
		// computed: name it only if the template spells it out.
		line, _, _ := strings.Cut(msg, ": ")
		if !literals[ms.name] || containsSecret(ms.name, secrets) {
			return fmt.Errorf("%s: computed secret name not resolved (name withheld: only names written in the template are shown)", line)
		}
		return fmt.Errorf("%s: %w", line, ms)
	}
	if strings.Contains(msg, `map has no entry for key "`) {
		line, _, _ := strings.Cut(msg, ": ")
		return fmt.Errorf("%s: the template's dot holds nothing; write {{ secret \"NAME\" }} to use a secret", line)
	}
	leaky := false
	for _, l := range leakyExecErrors {
		leaky = leaky || strings.Contains(msg, l)
	}
	leaky = leaky || containsSecret(msg, secrets)
	if leaky {
		// Keep "line N: at <node>" (template source), drop the reason.
		head := msg
		if i := strings.Index(msg, ">: "); i >= 0 {
			head = msg[:i+1]
		} else {
			head, _, _ = strings.Cut(msg, ": ")
		}
		if containsSecret(head, secrets) {
			head, _, _ = strings.Cut(msg, ": ")
		}
		return errors.New(head + ": execution failed (reason withheld: it may contain secret data)")
	}
	return errors.New(msg)
}

// containsSecret reports whether s contains any resolved value, or its
// base64 or JSON-quoted form.
func containsSecret(s string, secrets map[string]providers.Resolved) bool {
	has := func(v providers.Value) bool {
		if v.Len() == 0 {
			return false
		}
		raw := v.Reveal()
		q, _ := json.Marshal(raw)
		return strings.Contains(s, raw) ||
			strings.Contains(s, base64.StdEncoding.EncodeToString(v.Bytes())) ||
			strings.Contains(s, strings.Trim(string(q), `"`)) ||
			strings.Contains(s, strconv.Quote(raw))
	}
	for _, r := range secrets {
		if has(r.Value) {
			return true
		}
		for _, f := range r.Fields {
			if has(f) {
				return true
			}
		}
	}
	return false
}
