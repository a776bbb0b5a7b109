package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// decodeJSON parses b as one JSON object, numbers kept as json.Number.
// Errors are *syntaxError: encoding/json's own messages quote the
// offending character, which may be part of a secret, so they are
// rewritten to a position and a fixed reason.
func decodeJSON(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonError(b, err)
	}
	if off := int(dec.InputOffset()); len(bytes.TrimSpace(b[off:])) > 0 {
		line, col := position(b, off+firstNonSpace(b[off:]))
		return nil, &syntaxError{Line: line, Column: col, Reason: "unexpected data after the top-level value"}
	}
	m, ok := v.(map[string]any)
	if !ok {
		line, col := position(b, firstNonSpace(b))
		return nil, &syntaxError{Line: line, Column: col, Reason: fmt.Sprintf("top-level value is %s, not an object (use ?format=raw to read the file whole)", jsonKind(v))}
	}
	return m, nil
}

// jsonContext matches the fixed tail of encoding/json's "invalid character
// 'c' <context>" messages, such as "looking for beginning of value".
var (
	jsonInvalidChar = regexp.MustCompile(`^invalid character '(?:\\'|[^'])*' ([a-z :\\-]+)$`)
)

func jsonError(b []byte, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		line, col := position(b, len(b))
		reason := "unexpected end of input"
		if len(bytes.TrimSpace(b)) == 0 {
			reason = "empty file"
		}
		return &syntaxError{Line: line, Column: col, Reason: reason}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read, including the offending one.
		line, col := position(b, int(se.Offset)-1)
		reason := "invalid JSON"
		if m := jsonInvalidChar.FindStringSubmatch(se.Error()); m != nil {
			reason = "invalid character " + m[1]
		} else if se.Error() == "unexpected end of JSON input" {
			reason = "unexpected end of input"
		}
		return &syntaxError{Line: line, Column: col, Reason: reason}
	}
	return &syntaxError{Line: 1, Column: 1, Reason: "invalid JSON"}
}

func firstNonSpace(b []byte) int {
	return len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "not an object"
}
