package audit

// keywardRules are keyward's additions to gitleaks' rules, for credentials
// its guides name that gitleaks' default set leaves to its generic rule.
var keywardRules = []ruleSpec{
	{
		ID:          "url-password",
		Description: "A password in the user information of a URL, as in a connection string (postgres://user:PASSWORD@host/db).",
		// scheme://user:password@host: the password is group 1.
		Regex:       `(?i)\b[a-z][a-z0-9+.-]{1,30}://[^\s:/?#@'"\x60]{1,100}:([^\s/?#@'"\x60]{4,200})@[a-z0-9\[][a-z0-9.:\[\]-]*`,
		SecretGroup: 1,
		Keywords:    []string{"://"},
		Allowlists: []allowSpec{{
			// Placeholders and variables, not passwords.
			Regexes: []string{`(?i)^(?:\$\{?[a-z_][a-z0-9_]*\}?|\$\(.*\)|\{\{.*\}\}|<[^>]*>|%[a-z_(].*|\*+|x+|\.+|pass(?:word|wd)?|secret|changeme|example|redacted)$`},
		}},
	},
}
