//! A small drawing surface over printpdf: A4 pages, positions in millimetres from the top
//! left, text measured with the embedded font's own glyph widths (so columns line up and long
//! names are cut to fit), and characters the font lacks replaced by a visible mark.

use std::sync::LazyLock;

use std::collections::BTreeSet;

use printpdf::{
    Color, FontId, Line, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFontHandle,
    PdfPage, PdfSaveOptions, Point, Pt, Rect, Rgb, TextItem,
};

pub(super) const PAGE_WIDTH: f32 = 210.0;
pub(super) const PAGE_HEIGHT: f32 = 297.0;

/// Shown in place of a character the font has no glyph for.
pub(super) const MISSING_GLYPH: char = '\u{FFFD}';

static REGULAR_TTF: &[u8] = include_bytes!("../../../../templates/fonts/DejaVuSans.ttf");
static BOLD_TTF: &[u8] = include_bytes!("../../../../templates/fonts/DejaVuSans-Bold.ttf");

/// The two faces, parsed once per process (parsing is most of a small document's cost).
static FONTS: LazyLock<Option<(ParsedFont, ParsedFont)>> = LazyLock::new(|| {
    let regular = ParsedFont::from_bytes(REGULAR_TTF, 0, &mut Vec::new())?;
    let bold = ParsedFont::from_bytes(BOLD_TTF, 0, &mut Vec::new())?;
    Some((regular, bold))
});

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Colour(pub f32, pub f32, pub f32);

impl Colour {
    /// `#rrggbb`; anything else is dark grey.
    pub(super) fn hex(text: &str) -> Colour {
        let channel = |i: usize| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|v| f32::from(v) / 255.0)
        };
        match (text.len(), channel(1), channel(3), channel(5)) {
            (7, Some(r), Some(g), Some(b)) if text.starts_with('#') => Colour(r, g, b),
            _ => Colour(0.2, 0.2, 0.2),
        }
    }

    fn pdf(self) -> Color {
        Color::Rgb(Rgb::new(self.0, self.1, self.2, None))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Weight {
    Regular,
    Bold,
}

/// One drawing command, in millimetres from the top left. Kept in this form until the
/// document is finished, because the fonts are only embedded then: subset to the characters
/// the whole document uses.
#[derive(Debug, Clone)]
enum Draw {
    Text {
        x: f32,
        y: f32,
        size: f32,
        weight: Weight,
        colour: Colour,
        text: String,
    },
    Fill {
        x: f32,
        y: f32,
        width: f32,
        height: f32,
        colour: Colour,
    },
    Outline {
        x: f32,
        y: f32,
        width: f32,
        height: f32,
        colour: Colour,
    },
    Line {
        from: (f32, f32),
        to: (f32, f32),
        thickness: f32,
        colour: Colour,
    },
}

/// Pages of drawing commands.
pub(super) struct Canvas {
    title: String,
    pages: Vec<Vec<Draw>>,
}

impl Canvas {
    /// None only if the embedded fonts fail to parse (a build defect, caught by tests).
    pub(super) fn new(title: &str) -> Option<Canvas> {
        FONTS.as_ref()?;
        Some(Canvas {
            title: title.to_string(),
            pages: vec![Vec::new()],
        })
    }

    pub(super) fn new_page(&mut self) {
        self.pages.push(Vec::new());
    }

    pub(super) fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Draw on page `index` (0-based) instead of the current one, e.g. footers at the end.
    pub(super) fn on_page(&mut self, index: usize, draw: impl FnOnce(&mut PageOps<'_>)) {
        if let Some(commands) = self.pages.get_mut(index) {
            draw(&mut PageOps { commands });
        }
    }

    /// Draw on the current (last) page.
    pub(super) fn draw(&mut self, draw: impl FnOnce(&mut PageOps<'_>)) {
        let last = self.pages.len().saturating_sub(1);
        self.on_page(last, draw);
    }

    /// The PDF: fonts subset to the characters used, then every page's operations.
    pub(super) fn finish(self) -> Vec<u8> {
        let mut doc = PdfDocument::new(&self.title);
        let mut used: [BTreeSet<char>; 2] = [BTreeSet::new(), BTreeSet::new()];
        for command in self.pages.iter().flatten() {
            if let Draw::Text { weight, text, .. } = command {
                used[*weight as usize].extend(text.chars());
            }
        }
        let ids: Vec<Option<FontId>> = [Weight::Regular, Weight::Bold]
            .iter()
            .map(|weight| {
                let full = font(*weight)?;
                let subset = subset(*weight, &used[*weight as usize]);
                Some(doc.add_font(subset.as_ref().unwrap_or(full)))
            })
            .collect();
        let pages = self
            .pages
            .into_iter()
            .map(|commands| {
                let ops = commands.into_iter().flat_map(|c| to_ops(c, &ids)).collect();
                PdfPage::new(Mm(PAGE_WIDTH), Mm(PAGE_HEIGHT), ops)
            })
            .collect();
        doc.with_pages(pages)
            .save(&PdfSaveOptions::default(), &mut Vec::new())
    }
}

/// The face cut down to `chars` (plus .notdef), parsed back; None if anything fails, and the
/// whole face is embedded instead (a larger file, the same pages).
fn subset(weight: Weight, chars: &BTreeSet<char>) -> Option<ParsedFont> {
    use allsorts::binary::read::ReadScope;
    use allsorts::font_data::FontData;
    use allsorts::subset::{subset, CmapTarget, SubsetProfile};

    let full = font(weight)?;
    let bytes = match weight {
        Weight::Regular => REGULAR_TTF,
        Weight::Bold => BOLD_TTF,
    };
    let mut glyphs: BTreeSet<u16> = chars
        .iter()
        .filter_map(|c| full.lookup_glyph_index(u32::from(*c)))
        .collect();
    glyphs.remove(&0);
    // .notdef must come first (allsorts renumbers glyphs in the order given).
    let ids: Vec<u16> = std::iter::once(0).chain(glyphs).collect();
    let font_data = ReadScope::new(bytes).read::<FontData<'_>>().ok()?;
    let provider = font_data.table_provider(0).ok()?;
    let subset_bytes = subset(
        &provider,
        &ids,
        &SubsetProfile::Minimal,
        CmapTarget::Unicode,
    )
    .ok()?;
    ParsedFont::from_bytes(&subset_bytes, 0, &mut Vec::new())
}

fn to_ops(command: Draw, fonts: &[Option<FontId>]) -> Vec<Op> {
    match command {
        Draw::Text {
            x,
            y,
            size,
            weight,
            colour,
            text,
        } => {
            let Some(Some(font)) = fonts.get(weight as usize) else {
                return Vec::new();
            };
            vec![
                Op::StartTextSection,
                Op::SetFont {
                    font: PdfFontHandle::External(font.clone()),
                    size: Pt(size),
                },
                Op::SetFillColor { col: colour.pdf() },
                Op::SetTextCursor { pos: point(x, y) },
                Op::ShowText {
                    items: vec![TextItem::Text(text)],
                },
                Op::EndTextSection,
            ]
        }
        Draw::Fill {
            x,
            y,
            width,
            height,
            colour,
        } => vec![
            Op::SetFillColor { col: colour.pdf() },
            Op::DrawRectangle {
                rectangle: rect(x, y, width, height, PaintMode::Fill),
            },
        ],
        Draw::Outline {
            x,
            y,
            width,
            height,
            colour,
        } => vec![
            Op::SetOutlineColor { col: colour.pdf() },
            Op::SetOutlineThickness { pt: Pt(0.8) },
            Op::DrawRectangle {
                rectangle: rect(x, y, width, height, PaintMode::Stroke),
            },
        ],
        Draw::Line {
            from,
            to,
            thickness,
            colour,
        } => vec![
            Op::SetOutlineColor { col: colour.pdf() },
            Op::SetOutlineThickness { pt: Pt(thickness) },
            Op::DrawLine {
                line: Line {
                    points: vec![
                        LinePoint {
                            p: point(from.0, from.1),
                            bezier: false,
                        },
                        LinePoint {
                            p: point(to.0, to.1),
                            bezier: false,
                        },
                    ],
                    is_closed: false,
                },
            },
        ],
    }
}

fn rect(x: f32, y: f32, width: f32, height: f32, mode: PaintMode) -> Rect {
    Rect {
        x: Mm(x).into(),
        y: Mm(PAGE_HEIGHT - y - height).into(),
        width: Mm(width).into(),
        height: Mm(height).into(),
        mode: Some(mode),
        winding_order: None,
    }
}

/// Drawing commands on one page.
pub(super) struct PageOps<'a> {
    commands: &'a mut Vec<Draw>,
}

fn point(x_mm: f32, y_from_top_mm: f32) -> Point {
    Point {
        x: Mm(x_mm).into(),
        y: Mm(PAGE_HEIGHT - y_from_top_mm).into(),
    }
}

impl PageOps<'_> {
    /// Text with its baseline at `y` (mm from the top), starting at `x`.
    pub(super) fn text(
        &mut self,
        x: f32,
        y: f32,
        size: f32,
        weight: Weight,
        colour: Colour,
        text: &str,
    ) {
        let text = printable(text, weight);
        self.commands.push(Draw::Text {
            x,
            y,
            size,
            weight,
            colour,
            text,
        });
    }

    /// Text ending at `right`.
    pub(super) fn text_right(
        &mut self,
        right: f32,
        y: f32,
        size: f32,
        weight: Weight,
        colour: Colour,
        text: &str,
    ) {
        let width = text_width(text, size, weight);
        self.text(right - width, y, size, weight, colour, text);
    }

    /// A filled rectangle, `y` being its top edge.
    pub(super) fn fill(&mut self, x: f32, y: f32, width: f32, height: f32, colour: Colour) {
        self.commands.push(Draw::Fill {
            x,
            y,
            width,
            height,
            colour,
        });
    }

    /// A rectangle's outline, `y` being its top edge.
    pub(super) fn outline(&mut self, x: f32, y: f32, width: f32, height: f32, colour: Colour) {
        self.commands.push(Draw::Outline {
            x,
            y,
            width,
            height,
            colour,
        });
    }

    pub(super) fn line(
        &mut self,
        from: (f32, f32),
        to: (f32, f32),
        thickness_pt: f32,
        colour: Colour,
    ) {
        self.commands.push(Draw::Line {
            from,
            to,
            thickness: thickness_pt,
            colour,
        });
    }
}

fn font(weight: Weight) -> Option<&'static ParsedFont> {
    FONTS.as_ref().map(|(regular, bold)| match weight {
        Weight::Regular => regular,
        Weight::Bold => bold,
    })
}

/// The text with every character the font cannot draw replaced by [`MISSING_GLYPH`], and
/// control characters (which would corrupt the layout) by spaces.
pub(super) fn printable(text: &str, weight: Weight) -> String {
    let Some(font) = font(weight) else {
        return text.to_string();
    };
    text.chars()
        .map(|c| {
            if c.is_control() {
                ' '
            } else if font
                .lookup_glyph_index(u32::from(c))
                .is_some_and(|gid| gid != 0)
            {
                c
            } else {
                MISSING_GLYPH
            }
        })
        .collect()
}

/// The width of each character of `text` in mm at `size` points (after [`printable`]).
fn char_widths(text: &str, size: f32, weight: Weight) -> Vec<(char, f32)> {
    let Some(font) = font(weight) else {
        return text.chars().map(|c| (c, 0.0)).collect();
    };
    let scale = size / f32::from(font.units_per_em.max(1)) / 2.834_646;
    printable(text, weight)
        .chars()
        .map(|c| {
            let units = font
                .lookup_glyph_index(u32::from(c))
                .and_then(|gid| font.get_glyph_width(gid))
                .map_or(0, u32::from);
            (c, units as f32 * scale)
        })
        .collect()
}

/// Width of `text` in mm at `size` points.
pub(super) fn text_width(text: &str, size: f32, weight: Weight) -> f32 {
    char_widths(text, size, weight).iter().map(|(_, w)| w).sum()
}

/// `text` cut (with an ellipsis) to fit `width` mm. Each character is measured once, so the
/// work is linear in the text's length (it was measured again per character dropped).
pub(super) fn fit(text: &str, width: f32, size: f32, weight: Weight) -> String {
    let text = crate::text::cut(text, crate::text::LAYOUT_CHARS);
    let widths = char_widths(&text, size, weight);
    if widths.iter().map(|(_, w)| w).sum::<f32>() <= width {
        return text.into_owned();
    }
    let room = width - text_width("…", size, weight);
    let mut used = 0.0;
    let kept: String = widths
        .iter()
        .take_while(|(_, w)| {
            used += w;
            used <= room
        })
        .map(|(c, _)| *c)
        .collect();
    format!("{}…", kept.trim_end())
}

/// `text` broken into lines that fit `width` mm (at spaces; a word longer than a line is cut).
/// Linear in the text's length: each word is measured once.
pub(super) fn wrap(text: &str, width: f32, size: f32, weight: Weight) -> Vec<String> {
    let text = crate::text::cut(text, crate::text::LAYOUT_CHARS);
    let space = text_width(" ", size, weight);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut current_width = 0.0;
    for word in text.split_whitespace() {
        let word_width = text_width(word, size, weight);
        if current.is_empty() {
            current = fit(word, width, size, weight);
            current_width = word_width.min(width);
        } else if current_width + space + word_width <= width {
            current.push(' ');
            current.push_str(word);
            current_width += space + word_width;
        } else {
            lines.push(std::mem::take(&mut current));
            current = fit(word, width, size, weight);
            current_width = word_width.min(width);
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fonts_parse_and_cover_european_text() {
        assert!(FONTS.is_some());
        assert_eq!(printable("é ñ ü — € ß", Weight::Regular), "é ñ ü — € ß");
        assert_eq!(printable("bold é€", Weight::Bold), "bold é€");
    }

    #[test]
    fn characters_the_font_lacks_are_replaced_visibly() {
        // DejaVu Sans has no CJK ideographs.
        assert_eq!(
            printable("ok 中文!", Weight::Regular),
            format!("ok {MISSING_GLYPH}{MISSING_GLYPH}!")
        );
        assert_eq!(printable("tab\there", Weight::Regular), "tab here");
    }

    #[test]
    fn text_is_measured_cut_and_wrapped() {
        let wide = text_width("MMMMMMMMMM", 10.0, Weight::Regular);
        let narrow = text_width("iiiiiiiiii", 10.0, Weight::Regular);
        assert!(wide > narrow * 2.0, "{wide} vs {narrow}");
        let cut = fit(
            "A very long server name that does not fit in the column",
            30.0,
            9.0,
            Weight::Regular,
        );
        assert!(
            cut.ends_with('…') && text_width(&cut, 9.0, Weight::Regular) <= 30.0,
            "{cut}"
        );
        let lines = wrap(
            "one two three four five six seven eight nine ten",
            25.0,
            10.0,
            Weight::Regular,
        );
        assert!(
            lines.len() > 1
                && lines
                    .iter()
                    .all(|l| text_width(l, 10.0, Weight::Regular) <= 25.0),
            "{lines:?}"
        );
    }
}
