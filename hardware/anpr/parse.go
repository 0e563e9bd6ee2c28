package anpr

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"time"
)

// DefaultMaxBody is the body size Parse accepts when Options.MaxBody is
// zero. A Hikvision push carries up to three JPEG pictures next to its XML
// and Milesight embeds base64 pictures in its JSON, so the limit is far
// above the few kilobytes of metadata but still bounded.
const DefaultMaxBody = 8 << 20

// maxMetaPart bounds the XML or JSON part of a multipart body: the metadata
// is a few kilobytes, so a bigger part is not what we are looking for.
const maxMetaPart = 1 << 20

// maxParts bounds how many multipart parts are looked at, so that a body of
// thousands of empty parts cannot keep the parser busy.
const maxParts = 32

// Options tells Parse how to read a camera's payload. The zero value
// detects the format from the content type and the payload's shape.
type Options struct {
	// Preset restricts parsing to one format: "hikvision",
	// "platerecognizer", or one of the generic JSON presets ("plain",
	// "axis", "milesight", "openalpr"; see Presets). Empty or "auto"
	// means detect, which recognises every one of them.
	Preset string
	// Fields reads JSON through these dot paths. With a Preset, each
	// non-empty path overrides the preset's, so a vendor field name that
	// differs on some firmware can be corrected in configuration; without
	// one, Fields alone describe the format (Source "custom").
	Fields FieldPaths
	// MaxBody is the largest body read, in bytes; zero means
	// DefaultMaxBody. Larger bodies are refused.
	MaxBody int
	// ReverseDirection swaps Approaching and Leaving, for a camera mounted
	// to watch vehicles from behind or configured with the opposite sense
	// of "forward".
	ReverseDirection bool
	// Location is the time zone of timestamps that carry none; nil means
	// time.Local, since cameras are usually set to the site's local time.
	Location *time.Location
}

// ErrNoRead reports a well-formed payload that carries no plate: a
// heartbeat, a non-ANPR alarm, an empty result list, a vehicle whose plate
// the camera could not read. Callers test for it with errors.Is and answer
// the camera normally; it is not a fault.
var ErrNoRead = errors.New("anpr: no plate read")

// noRead is an ErrNoRead with the reason, for logs.
type noRead struct{ why string }

func (e noRead) Error() string        { return "anpr: no plate read: " + e.why }
func (e noRead) Is(target error) bool { return target == ErrNoRead }

func noReadf(format string, args ...any) error {
	return noRead{why: fmt.Sprintf(format, args...)}
}

// errorf builds a parse error. Errors never quote the body: bodies carry
// pictures and can be megabytes, so at most a short, quoted excerpt of one
// field appears.
func errorf(format string, args ...any) error {
	return fmt.Errorf("anpr: "+format, args...)
}

// excerpt quotes at most a few dozen bytes of s for an error message.
func excerpt(s string) string {
	const n = 32
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// shortErr keeps a decoder's error message short: encoding/xml quotes
// element names from the input, which a hostile body can make huge.
func shortErr(err error) string {
	msg := err.Error()
	if len(msg) > 100 {
		msg = msg[:100] + "…"
	}
	return msg
}

// Parse reads a camera's payload held in memory. contentType is the
// request's Content-Type header. See ParseReader.
func Parse(contentType string, body []byte, opt Options) ([]Read, error) {
	return ParseReader(contentType, bytes.NewReader(body), opt)
}

// ParseReader reads a camera's payload from r, which it reads at most
// Options.MaxBody bytes of. It detects the format from contentType and the
// payload's shape, unless Options.Preset names one. Multipart bodies are
// streamed: picture parts are skipped without being kept in memory, and
// reading stops at the first part that holds the event, so the handler
// should drain or close the rest of the request body itself.
//
// It returns one Read per event (the best result when the camera reports
// several candidates), an error wrapping ErrNoRead when the payload is
// well-formed but reports no plate, or another error, in a clear sentence,
// when the payload cannot be understood.
func ParseReader(contentType string, r io.Reader, opt Options) ([]Read, error) {
	p, err := newParser(opt)
	if err != nil {
		return nil, err
	}
	lr := &limitReader{r: r, n: int64(p.maxBody)}
	reads, err := p.parseBody(contentType, lr)
	if lr.exceeded {
		return nil, errorf("the body is larger than %d bytes", p.maxBody)
	}
	return reads, err
}

// Check reports whether opt can be used, in the sentence ParseReader would
// give at every push (an unknown preset), so that a configuration mistake
// is found when the program starts.
func (opt Options) Check() error {
	_, err := newParser(opt)
	return err
}

// parser carries the resolved options through one parse.
type parser struct {
	opt     Options
	maxBody int
	loc     *time.Location
	// want is the format the caller insists on; empty means detect.
	want string
	// fields are the JSON layouts to try, resolved from Preset and Fields;
	// nil means detect from the JSON's shape.
	fields []FieldPaths
	source string
}

func newParser(opt Options) (*parser, error) {
	p := &parser{opt: opt, maxBody: opt.MaxBody, loc: opt.Location}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxBody
	}
	if p.loc == nil {
		p.loc = time.Local
	}
	switch name := strings.ToLower(strings.TrimSpace(opt.Preset)); name {
	case "", "auto":
		if !opt.Fields.empty() {
			p.want = "json"
			p.fields = []FieldPaths{opt.Fields}
			p.source = "custom"
		}
	case "hikvision":
		p.want = "hikvision"
	default:
		layouts, ok := presets[name]
		if !ok {
			return nil, errorf("unknown preset %s; known presets are %s", excerpt(opt.Preset), strings.Join(Presets(), ", "))
		}
		p.want = "json"
		p.source = name
		for _, l := range layouts {
			p.fields = append(p.fields, l.override(opt.Fields))
		}
	}
	return p, nil
}

// limitReader reads at most n bytes and remembers whether the body went on
// beyond them, so that the error can say "too large" rather than whatever
// a decoder makes of a truncated body.
type limitReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: exactly n bytes is fine, n+1 is not.
		var one [1]byte
		k, err := l.r.Read(one[:])
		if k > 0 {
			l.exceeded = true
			return 0, errors.New("body too large")
		}
		return 0, err
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	k, err := l.r.Read(b)
	l.n -= int64(k)
	return k, err
}

func (p *parser) parseBody(contentType string, r io.Reader) ([]Read, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mediaType = "" // a broken header: look at the body instead
	}
	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			return nil, errorf("the %s body has no boundary parameter", excerpt(mediaType))
		}
		return p.parseMultipart(multipart.NewReader(r, boundary), boundary)
	case isXMLType(mediaType):
		data, err := readAll(r, p.maxBody, "XML body")
		if err != nil {
			return nil, err
		}
		return p.parseXML(data)
	case isJSONType(mediaType):
		data, err := readAll(r, p.maxBody, "JSON body")
		if err != nil {
			return nil, err
		}
		return p.parseJSON(data)
	case mediaType == "application/x-www-form-urlencoded":
		data, err := readAll(r, p.maxBody, "form body")
		if err != nil {
			return nil, err
		}
		return p.parseForm(data)
	}
	// No usable content type (or text/plain, as some cameras send): sniff.
	br := bufio.NewReaderSize(r, 512)
	head, _ := br.Peek(512)
	head = bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n")
	switch {
	case len(head) == 0:
		return nil, errorf("the body is empty")
	case head[0] == '<':
		data, err := readAll(br, p.maxBody, "XML body")
		if err != nil {
			return nil, err
		}
		return p.parseXML(data)
	case head[0] == '{' || head[0] == '[':
		data, err := readAll(br, p.maxBody, "JSON body")
		if err != nil {
			return nil, err
		}
		return p.parseJSON(data)
	case bytes.HasPrefix(head, []byte("--")):
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		boundary := string(bytes.TrimRight(line, " \t\r"))
		if boundary == "" || len(boundary) > 70 {
			return nil, errorf("the body looks like multipart but its first line is not a boundary")
		}
		// The body was trimmed for sniffing only; the multipart reader
		// skips any preamble itself.
		return p.parseMultipart(multipart.NewReader(br, boundary), boundary)
	}
	if contentType == "" {
		return nil, errorf("the request has no Content-Type and the body is neither XML, JSON nor multipart")
	}
	return nil, errorf("unsupported content type %s and the body is neither XML, JSON nor multipart", excerpt(contentType))
}

var utf8BOM = []byte("\xef\xbb\xbf")

func isXMLType(t string) bool {
	return t == "application/xml" || t == "text/xml" || strings.HasSuffix(t, "+xml")
}

func isJSONType(t string) bool {
	return t == "application/json" || t == "text/json" || strings.HasSuffix(t, "+json")
}

// readAll reads r up to limit bytes; what is the name used in the error.
func readAll(r io.Reader, limit int, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, errorf("reading the %s: %s", what, shortErr(err))
	}
	if len(data) > limit {
		return nil, errorf("the %s is larger than %d bytes", what, limit)
	}
	return data, nil
}

// parseMultipart walks the parts until one holds the event: an XML part
// (Hikvision) or a JSON part or "json" form field (Plate Recognizer and
// friends). Picture parts are skipped: NextPart discards the rest of the
// current part as it streams past, so a JPEG is never held in memory.
func (p *parser) parseMultipart(mr *multipart.Reader, boundary string) ([]Read, error) {
	sawPicture := false
	for i := 0; ; i++ {
		if i == maxParts {
			return nil, errorf("the multipart body has more than %d parts and none holds an ANPR event", maxParts)
		}
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if i == 0 {
				return nil, errorf("the body does not start with its multipart boundary %s", excerpt(boundary))
			}
			return nil, errorf("the multipart body is cut short or malformed: %s", shortErr(err))
		}
		kind := partKind(part)
		switch kind {
		case "xml", "json":
			data, err := readAll(part, maxMetaPart, kind+" part")
			part.Close()
			if err != nil {
				return nil, err
			}
			if kind == "xml" {
				return p.parseXML(data)
			}
			return p.parseJSON(data)
		case "picture":
			sawPicture = true
		}
		part.Close()
	}
	if sawPicture {
		return nil, errorf("the multipart body holds pictures but no XML or JSON event part")
	}
	return nil, errorf("the multipart body holds no XML or JSON event part")
}

// partKind tells what a multipart part is from its headers alone, so that
// pictures are skipped without being read. Cameras label the event part
// inconsistently (Hikvision: name "anpr.xml" or "MoveDetection.xml",
// Content-Type text/xml or application/xml; Plate Recognizer: a "json" form
// field with no Content-Type), hence the several clues.
func partKind(part *multipart.Part) string {
	ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
	name := strings.ToLower(part.FormName())
	file := strings.ToLower(part.FileName())
	switch {
	case isXMLType(ct), strings.HasSuffix(name, ".xml"), strings.HasSuffix(file, ".xml"):
		return "xml"
	case isJSONType(ct), name == "json", strings.HasSuffix(name, ".json"), strings.HasSuffix(file, ".json"):
		return "json"
	case strings.HasPrefix(ct, "image/"), ct == "application/octet-stream", file != "":
		return "picture"
	}
	return "other"
}

// parseForm reads an application/x-www-form-urlencoded body: Plate
// Recognizer can post its JSON in a "json" field; otherwise the fields
// themselves are the payload (plate=KLM42&confidence=0.9).
func (p *parser) parseForm(data []byte) ([]Read, error) {
	// Some camera firmware labels an XML or JSON body as a form.
	switch head := bytes.TrimLeft(bytes.TrimPrefix(data, utf8BOM), " \t\r\n"); {
	case bytes.HasPrefix(head, []byte("<")):
		return p.parseXML(data)
	case bytes.HasPrefix(head, []byte("{")):
		return p.parseJSON(data)
	}
	vals, err := url.ParseQuery(string(data))
	if err != nil {
		return nil, errorf("the form body is not valid URL encoding: %s", shortErr(err))
	}
	if js, ok := vals["json"]; ok && len(js) > 0 {
		return p.parseJSON([]byte(js[0]))
	}
	obj := make(map[string]any, len(vals))
	for k, v := range vals {
		if len(v) > 0 {
			obj[k] = v[0]
		}
	}
	return p.parseObject(obj)
}
