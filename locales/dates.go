package locales

import (
	"strconv"
	"strings"
	"time"
)

// x/text formats numbers but not dates, so each language's way of writing a
// date lives here: month names from CLDR (the medium or long date, whichever a
// chat message reads better with) and the order of day, month and year.

// calendar writes dates in one language.
type calendar struct {
	// date writes day, month and year with ASCII digits.
	date func(day int, month time.Month, year int) string
	// join goes between the date and the time of day in DateTime.
	join string
	// clock writes the time of day with ASCII digits.
	clock func(t time.Time) string
	// digits turns ASCII digits into the language's own, if it has them.
	digits func(string) string
}

func asIs(s string) string { return s }

// Clocks: CLDR writes the hour with two digits in most languages ("09:05"),
// with one in Spanish and Japanese ("9:05"), and on a 12-hour clock in
// English. Go's layouts have no unpadded 24-hour hour, hence h24.
func hh24(t time.Time) string { return t.Format("15:04") }
func h24(t time.Time) string  { return strconv.Itoa(t.Hour()) + t.Format(":04") }
func h12(t time.Time) string  { return t.Format("3:04 PM") }

// arabicDigits is x/text's choice for "ar" numbers too, so dates and points
// in one Arabic message use the same digits.
var arabicDigits = strings.NewReplacer(
	"0", "٠", "1", "١", "2", "٢", "3", "٣", "4", "٤",
	"5", "٥", "6", "٦", "7", "٧", "8", "٨", "9", "٩",
).Replace

var (
	enMonths = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	deMonths = [12]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}
	frMonths = [12]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
	esMonths = [12]string{"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"}
	itMonths = [12]string{"gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"}
	ptMonths = [12]string{"jan.", "fev.", "mar.", "abr.", "mai.", "jun.", "jul.", "ago.", "set.", "out.", "nov.", "dez."}
	// Russian dates take the month in the genitive: "5 марта", not "5 март".
	ruMonths = [12]string{"января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"}
	// CLDR's "ar" months (Egypt and the Gulf); the Levant's names differ.
	arMonths = [12]string{"يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر"}
)

// dayMonthYear writes "5 mars 2027" style dates.
func dayMonthYear(months *[12]string) func(int, time.Month, int) string {
	return func(d int, m time.Month, y int) string {
		return strconv.Itoa(d) + " " + months[m-1] + " " + strconv.Itoa(y)
	}
}

// cjk writes "2027年3月5日" style dates with the given year, month and day marks.
func cjk(yearMark, monthMark, dayMark string) func(int, time.Month, int) string {
	return func(d int, m time.Month, y int) string {
		return strconv.Itoa(y) + yearMark + strconv.Itoa(int(m)) + monthMark + strconv.Itoa(d) + dayMark
	}
}

var calendars = map[string]calendar{
	"en": {date: func(d int, m time.Month, y int) string {
		return enMonths[m-1] + " " + strconv.Itoa(d) + ", " + strconv.Itoa(y)
	}, join: ", ", clock: h12, digits: asIs},
	"de": {date: func(d int, m time.Month, y int) string {
		return strconv.Itoa(d) + ". " + deMonths[m-1] + " " + strconv.Itoa(y)
	}, join: ", ", clock: hh24, digits: asIs},
	// French writes the first of the month as an ordinal: "1er mars".
	"fr": {date: func(d int, m time.Month, y int) string {
		day := strconv.Itoa(d)
		if d == 1 {
			day = "1er"
		}
		return day + " " + frMonths[m-1] + " " + strconv.Itoa(y)
	}, join: " à ", clock: hh24, digits: asIs},
	"es": {date: dayMonthYear(&esMonths), join: ", ", clock: h24, digits: asIs},
	"it": {date: dayMonthYear(&itMonths), join: ", ", clock: hh24, digits: asIs},
	"pt-BR": {date: func(d int, m time.Month, y int) string {
		return strconv.Itoa(d) + " de " + ptMonths[m-1] + " de " + strconv.Itoa(y)
	}, join: ", ", clock: hh24, digits: asIs},
	"ru": {date: func(d int, m time.Month, y int) string {
		return strconv.Itoa(d) + " " + ruMonths[m-1] + " " + strconv.Itoa(y) + " г."
	}, join: ", ", clock: hh24, digits: asIs},
	"ar":    {date: dayMonthYear(&arMonths), join: "، ", clock: hh24, digits: arabicDigits},
	"ja":    {date: cjk("年", "月", "日"), join: " ", clock: h24, digits: asIs},
	"ko":    {date: cjk("년 ", "월 ", "일"), join: " ", clock: hh24, digits: asIs},
	"zh-CN": {date: cjk("年", "月", "日"), join: " ", clock: hh24, digits: asIs},
	"zh-TW": {date: cjk("年", "月", "日"), join: " ", clock: hh24, digits: asIs},
}
