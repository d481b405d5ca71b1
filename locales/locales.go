// Package locales holds Tally's message files (one go-i18n TOML file per
// language, embedded in the binary) and the localizer the chat adapters use to
// render messages, numbers and dates in a member's language.
package locales

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/nicksnyder/go-i18n/v2/i18n/template"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.toml
var files embed.FS

// codes is the source of Supported; the package reads only this array, so a
// caller that changes Supported cannot change what the package does.
var codes = [...]string{"en", "de", "fr", "es", "it", "pt-BR", "ru", "ar", "ja", "ko", "zh-CN", "zh-TW"}

// Supported lists the locale codes Tally speaks, "en" first: en de fr es it pt-BR ru ar ja ko zh-CN zh-TW.
var Supported = slices.Clone(codes[:])

// names are the languages' own names, as a language picker shows them.
var names = map[string]string{
	"en":    "English",
	"de":    "Deutsch",
	"fr":    "Français",
	"es":    "Español",
	"it":    "Italiano",
	"pt-BR": "Português (Brasil)",
	"ru":    "Русский",
	"ar":    "العربية",
	"ja":    "日本語",
	"ko":    "한국어",
	"zh-CN": "中文（简体）",
	"zh-TW": "中文（繁體）",
}

// Catalog holds every embedded message file.
type Catalog struct {
	byCode  map[string]*Localizer
	tags    []language.Tag // tags[i] is codes[i]
	matcher language.Matcher
	ids     []string // the reference file's ids, sorted
}

// Load parses the embedded files (embed.FS + bundle.LoadMessageFileFS); an
// error means a broken file: a TOML or template syntax error, or a file
// missing for a supported code or present for an unsupported one.
func Load() (*Catalog, error) {
	return load(files)
}

// load is Load on any file system, so tests can hand it broken files.
func load(fsys fs.FS) (*Catalog, error) {
	bundle := i18n.NewBundle(language.English)
	bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)

	c := &Catalog{byCode: make(map[string]*Localizer, len(codes))}
	for _, code := range codes {
		file := code + ".toml"
		mf, err := bundle.LoadMessageFileFS(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("locales: %s: %w", file, err)
		}
		tag := language.Make(code)
		if mf.Tag != tag {
			return nil, fmt.Errorf("locales: %s: go-i18n reads it as %q, want %q", file, mf.Tag, tag)
		}
		for _, m := range mf.Messages {
			if err := checkTemplates(m); err != nil {
				return nil, fmt.Errorf("locales: %s: %w", file, err)
			}
		}
		if code == "en" {
			for _, m := range mf.Messages {
				c.ids = append(c.ids, m.ID)
			}
			slices.Sort(c.ids)
		}
		c.tags = append(c.tags, tag)
		c.byCode[code] = &Localizer{
			code:    code,
			tag:     tag,
			name:    names[code],
			loc:     i18n.NewLocalizer(bundle, code),
			printer: message.NewPrinter(tag),
			dates:   calendars[code],
		}
	}
	// A file nobody asked for is most likely a misnamed translation.
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("locales: %w", err)
	}
	for _, e := range entries {
		code := strings.TrimSuffix(e.Name(), path.Ext(e.Name()))
		if !slices.Contains(codes[:], code) {
			return nil, fmt.Errorf("locales: %s: %q is not a supported code", e.Name(), code)
		}
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// checkTemplates parses every plural form of m, so that a template syntax
// error stops Load instead of showing up as a raw id in a chat.
func checkTemplates(m *i18n.Message) error {
	forms := map[string]string{"zero": m.Zero, "one": m.One, "two": m.Two, "few": m.Few, "many": m.Many, "other": m.Other}
	for form, src := range forms {
		if src == "" {
			continue
		}
		if _, err := texttemplate.New(m.ID).Parse(src); err != nil {
			return fmt.Errorf("message %q (%s): %w", m.ID, form, err)
		}
	}
	if m.Other == "" {
		return fmt.Errorf("message %q has no \"other\" form", m.ID)
	}
	return nil
}

// Match maps platform language tags (Discord's interaction locale, Telegram's
// language_code, a /lang argument) to a supported code. It tries each tag in
// order and returns the first that a language.Matcher pairs with a supported
// code at language.High confidence or better and in the same language:
// "pt-br" and "pt" give "pt-BR", "zh-Hans" and "zh" give "zh-CN", "zh-Hant"
// and "zh-HK" give "zh-TW", "es-419" gives "es", "en-GB" gives "en". The
// same-language rule keeps the matcher's neighbour pairs (Belarusian to
// Russian, Galician to Spanish) out: a member who asks for a language Tally
// lacks gets the programme default, not a guess. Malformed and empty tags are
// skipped; "" means no tag matched.
func (c *Catalog) Match(tags ...string) string {
	for _, s := range tags {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if l := c.byCode[s]; l != nil {
			return l.code
		}
		tag, err := language.Parse(s)
		if err != nil {
			continue
		}
		_, i, conf := c.matcher.Match(tag)
		if conf < language.High {
			continue
		}
		want, _ := tag.Base()
		got, _ := c.tags[i].Base()
		if want != got {
			continue
		}
		return codes[i]
	}
	return ""
}

// Resolve picks the locale for a member: chosen (a /lang choice) if
// supported, else the platform's tag matched, else fallback (the programme
// default), else "en". All three go through Match, so "pt-br" or "de-DE"
// work anywhere.
func (c *Catalog) Resolve(chosen, platform, fallback string) string {
	for _, s := range [...]string{chosen, platform, fallback} {
		if code := c.Match(s); code != "" {
			return code
		}
	}
	return "en"
}

// For returns the localizer of a supported code (falls back to en for
// anything else). Localizers are built once by Load and safe for concurrent
// use.
func (c *Catalog) For(code string) *Localizer {
	if l := c.byCode[code]; l != nil {
		return l
	}
	return c.byCode["en"]
}

// IDs returns every message id of the reference (en) file, sorted.
func (c *Catalog) IDs() []string {
	return slices.Clone(c.ids)
}

// Localizer renders messages, numbers and dates in one language. It holds no
// mutable state, so one Localizer serves every goroutine.
type Localizer struct {
	code    string
	tag     language.Tag
	name    string
	loc     *i18n.Localizer
	printer *message.Printer
	dates   calendar
}

// Code returns the supported code the Localizer speaks, e.g. "pt-BR".
func (l *Localizer) Code() string { return l.code }

// Name returns the language's own name ("Deutsch", "Português (Brasil)",
// "日本語", "中文（简体）", "中文（繁體）", "العربية", …).
func (l *Localizer) Name() string { return l.name }

// T renders message id with data (templates use {{.Name}} for data["Name"]).
// A missing id renders the id itself and is a bug the tests catch; a message
// this language lacks renders in English.
func (l *Localizer) T(id string, data map[string]any) string {
	msg, _ := l.render(id, nil, data, nil)
	return msg
}

// N renders a plural message id: count picks the plural form by the
// language's CLDR rules; data gets "Count" (count formatted for the locale)
// unless given.
func (l *Localizer) N(id string, count int64, data map[string]any) string {
	msg, _ := l.render(id, &count, data, nil)
	return msg
}

// render is T and N with the error go-i18n reports (a missing id or plural
// form, a template error) and the template parser to use (nil for the
// default); tests use both to fail where T and N would quietly cope.
func (l *Localizer) render(id string, count *int64, data map[string]any, parser template.Parser) (string, error) {
	lc := &i18n.LocalizeConfig{MessageID: id, TemplateParser: parser}
	if count != nil {
		lc.PluralCount = *count
		if _, ok := data["Count"]; !ok {
			// Copy: the caller's map may be shared with other goroutines.
			d := make(map[string]any, len(data)+1)
			for k, v := range data {
				d[k] = v
			}
			d["Count"] = l.Number(*count)
			data = d
		}
	}
	if data != nil {
		lc.TemplateData = data
	} else {
		lc.TemplateData = map[string]any{}
	}
	msg, tag, err := l.loc.LocalizeWithTag(lc)
	if err == nil && tag != l.tag {
		err = fmt.Errorf("message %q rendered in %s, not %s", id, tag, l.tag)
	}
	if msg == "" {
		return id, err
	}
	return msg, err
}

// Number formats n with the locale's digit grouping, as x/text's
// message.Printer does: en 1,234; de 1.234; fr and ru 1 234 with a no-break
// space; ar in Arabic-Indic digits ١٬٢٣٤.
func (l *Localizer) Number(n int64) string {
	return l.printer.Sprintf("%d", n)
}

// Date formats the calendar date of t in loc (UTC when loc is nil) the way
// the locale writes dates: en "Mar 5, 2027", de "5. März 2027", fr
// "5 mars 2027", ja and zh "2027年3月5日", ko "2027년 3월 5일", ru
// "5 марта 2027 г.", ar "٥ مارس ٢٠٢٧", pt-BR "5 de mar. de 2027", es and it
// "5 mar 2027".
func (l *Localizer) Date(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return l.dates.digits(l.dates.date(t.Day(), t.Month(), t.Year()))
}

// DateTime is Date plus the time of day: 24-hour for all but en, which uses
// e.g. "Mar 5, 2027, 3:04 PM"; de "5. März 2027, 15:04", fr
// "5 mars 2027 à 15:04", ja "2027年3月5日 9:05".
func (l *Localizer) DateTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return l.dates.digits(l.dates.date(t.Day(), t.Month(), t.Year()) + l.dates.join + l.dates.clock(t))
}
