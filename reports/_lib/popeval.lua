--[[
popeval.lua: the Quarto features the evaluation report uses, for pandoc without Quarto, and the
report's house style for both engines.

Under Quarto (the global `quarto` exists) only the house style runs; Quarto does the rest itself.
Without Quarto (popeval's fallback engine) this filter also provides:

  * `::: {.content-visible when-meta="key"}` / `.content-hidden`: kept or dropped by a metadata flag;
  * callouts `::: {.callout-note}` (note, tip, important, warning, caution), title from a first
    heading or the `title` attribute;
  * cross-references: a `::: {#tbl-x}` div holding a captioned table and a figure `{#fig-x}` are
    numbered in order ("Tabel 1: ...", "Figuur 1: ..."), `@tbl-x` / `@fig-x` become "Tabel 1" /
    "Figuur 1" linked to them; an unknown reference stops the render;
  * `fig-alt`: the figure's image gets its own description (HTML alt, DOCX descr, PDF /Alt);
  * in Typst, figures stay where the text puts them (no floats, so none lands between the two
    parts of a table broken over two pages), and a table's group rows become subheaders that
    never end a page alone and are repeated above their group's rows on the next page.

House style, both engines:

  * table column widths that add up to the text width; in Typst, column names hyphenated where
    they are longer than their column;
  * `::: {.source}` (source lines and table notes) and `::: {.colofon}` blocks styled in Typst
    (small, muted) and DOCX (paragraph styles "Source" and "Colofon" of the reference document);
  * in DOCX, a table's group rows in the paragraph style "Group Row" (kept with the next row).
]]

local in_quarto = (quarto ~= nil)

local function is_format(name)
  return FORMAT:match(name) ~= nil
end

local function meta_flag(meta, key)
  local v = meta[key]
  if v == nil then return false end
  if type(v) == "boolean" then return v end
  local s = pandoc.utils.stringify(v)
  return s == "true" or s == "yes" or s == "1"
end

local function lang_of(meta)
  local l = meta.lang and pandoc.utils.stringify(meta.lang) or "en"
  return l:sub(1, 2)
end

local TITLES = {
  nl = { sec = "Sectie", tbl = "Tabel", fig = "Figuur", note = "Opmerking", warning = "Waarschuwing", important = "Belangrijk", tip = "Tip", caution = "Let op" },
  en = { sec = "Section", tbl = "Table", fig = "Figure", note = "Note", warning = "Warning", important = "Important", tip = "Tip", caution = "Caution" },
}

local function typst_escape_string(s)
  return (s:gsub("\\", "\\\\"):gsub('"', '\\"'))
end

local function typst_inlines(inlines)
  local doc = pandoc.Pandoc({ pandoc.Plain(inlines) })
  return (pandoc.write(doc, "typst"):gsub("%s+$", ""))
end

-- ------------------------------------------------------------------ conditional content
local function conditional(meta)
  return {
    Div = function(div)
      local visible = div.classes:includes("content-visible")
      local hidden = div.classes:includes("content-hidden")
      if not (visible or hidden) then return nil end
      local key = div.attributes["when-meta"]
      if key == nil then return nil end
      local on = meta_flag(meta, key)
      if (visible and on) or (hidden and not on) then
        return div.content
      end
      return {}
    end,
  }
end

-- ------------------------------------------------------------------ callouts
local CALLOUT_COLOURS = { note = "#0b5cad", tip = "#2e7d32", important = "#b08a00", warning = "#b08a00", caution = "#b3261e" }

local function callouts(meta)
  local lang = lang_of(meta)
  return {
    Div = function(div)
      local kind
      for _, c in ipairs(div.classes) do
        local k = c:match("^callout%-(%a+)$")
        if k then kind = k end
      end
      if kind == nil then return nil end
      local content = div.content
      local title
      if #content > 0 and content[1].t == "Header" then
        title = content[1].content
        content = pandoc.List({ table.unpack(content, 2) })
      elseif div.attributes.title then
        title = pandoc.Inlines(div.attributes.title)
      else
        title = pandoc.Inlines((TITLES[lang] or TITLES.en)[kind] or kind)
      end
      local colour = CALLOUT_COLOURS[kind] or "#5d6874"
      if is_format("typst") then
        local blocks = pandoc.List({
          pandoc.RawBlock("typst", '#block(width: 100%, breakable: false, inset: (left: 9pt, right: 8pt, y: 7pt), fill: rgb("#f4f5f6"), stroke: (left: 2.5pt + rgb("' .. colour .. '")))['),
          pandoc.Para({ pandoc.Strong(title) }),
        })
        blocks:extend(content)
        blocks:insert(pandoc.RawBlock("typst", "]"))
        return blocks
      elseif is_format("docx") then
        local blocks = pandoc.List({ pandoc.Para({ pandoc.Strong(title) }) })
        blocks:extend(content)
        return pandoc.Div(blocks, { ["custom-style"] = "Callout" })
      else
        local head = pandoc.Div({ pandoc.Plain(title) }, { class = "callout-title" })
        local body = pandoc.Div(content, { class = "callout-body" })
        return pandoc.Div({ head, body }, { class = "callout callout-" .. kind, role = "note" })
      end
    end,
  }
end

-- ------------------------------------------------------------------ cross-references
local function crossref(doc)
  local lang = lang_of(doc.meta)
  local names = TITLES[lang] or TITLES.en
  local numbers = {}
  local count = { tbl = 0, fig = 0 }

  local function prefix(kind, id, caption_blocks)
    count[kind] = count[kind] + 1
    local label = names[kind] .. " " .. count[kind]
    numbers[id] = label
    local lead = pandoc.Inlines({ pandoc.Str(label .. ":"), pandoc.Space() })
    if #caption_blocks == 0 then
      return { pandoc.Plain(lead) }
    end
    local first = caption_blocks[1]
    first.content = lead .. first.content
    return caption_blocks
  end

  local levels = {}
  local function number_blocks(blocks)
    for _, b in ipairs(blocks) do
      if b.t == "Header" and not b.classes:includes("unnumbered") then
        levels[b.level] = (levels[b.level] or 0) + 1
        for l = b.level + 1, 6 do levels[l] = nil end
        if b.identifier:match("^sec%-") then
          local parts = {}
          for l = 1, b.level do parts[#parts + 1] = tostring(levels[l] or 0) end
          numbers[b.identifier] = names.sec .. " " .. table.concat(parts, ".")
        end
      elseif b.t == "Div" and b.identifier:match("^tbl%-") then
        local done = false
        b.content = b.content:walk({
          Table = function(t)
            if done then return nil end
            done = true
            t.caption.long = prefix("tbl", b.identifier, t.caption.long)
            return t
          end,
        })
        if not done then error("popeval.lua: " .. b.identifier .. " holds no table") end
      elseif b.t == "Figure" and b.identifier:match("^fig%-") then
        b.caption.long = prefix("fig", b.identifier, b.caption.long)
      elseif b.content and type(b.content) == "table" and (b.t == "Div" or b.t == "BlockQuote") then
        number_blocks(b.content)
      end
    end
  end
  number_blocks(doc.blocks)

  doc.blocks = doc.blocks:walk({
    Cite = function(cite)
      local out = pandoc.Inlines({})
      for i, c in ipairs(cite.citations) do
        local id = c.id
        if id:match("^tbl%-") or id:match("^fig%-") or id:match("^sec%-") then
          local label = numbers[id]
          if label == nil then error("popeval.lua: unknown cross-reference @" .. id) end
          if i > 1 then out:insert(pandoc.Str(",")); out:insert(pandoc.Space()) end
          out:insert(pandoc.Link(label, "#" .. id))
        else
          return nil
        end
      end
      return out
    end,
  })
  return doc
end

-- ------------------------------------------------------------------ a figure's source line (Typst)
local function sources_into_figures()
  return {
    Blocks = function(blocks)
      if not is_format("typst") then return nil end
      local out = pandoc.List()
      local i = 1
      while i <= #blocks do
        local b, nxt = blocks[i], blocks[i + 1]
        if b.t == "Figure" and nxt and nxt.t == "Div" and nxt.classes:includes("source") then
          local parts = {}
          for _, blk in ipairs(nxt.content) do
            parts[#parts + 1] = typst_inlines(pandoc.utils.blocks_to_inlines({ blk }))
          end
          b.attributes["popeval-source"] = table.concat(parts, " ")
          out:insert(b)
          i = i + 2
        else
          out:insert(b)
          i = i + 1
        end
      end
      return out
    end,
  }
end

-- ------------------------------------------------------------------ figures' alt text
local function figures()
  return {
    Figure = function(fig)
      local alt
      fig.content = fig.content:walk({
        Image = function(img)
          alt = img.attributes["fig-alt"]
          if alt then
            img.attributes["fig-alt"] = nil
            img.caption = pandoc.Inlines(alt)
          end
          return img
        end,
      })
      if is_format("typst") then
        local src, width
        pandoc.walk_block(fig, { Image = function(img) src = img.src; width = img.attributes.width end })
        if src == nil then return nil end
        local cap = typst_inlines(pandoc.utils.blocks_to_inlines(fig.caption.long))
        local w = width and width:gsub("%%$", "%%") or "100%"
        local alt_arg = alt and (', alt: "' .. typst_escape_string(alt) .. '"') or ""
        local label = fig.identifier ~= "" and (" <" .. fig.identifier .. ">") or ""
        local source = fig.attributes["popeval-source"]
        if source then
          cap = cap .. ' #linebreak() #text(size: 7.5pt, weight: "regular", fill: ' .. 'rgb("#5d6874")' .. ")[" .. source .. "]"
        end
        -- a figure stays where the text puts it (it never floats: a float can land between the two
        -- parts of a table broken over two pages); its source line travels with it, in the caption
        return pandoc.RawBlock("typst", '#figure(image("' .. typst_escape_string(src) .. '", width: ' .. w .. alt_arg .. "), caption: [" .. cap .. "], kind: image)" .. label)
      end
      return fig
    end,
  }
end

-- ------------------------------------------------------------------ house style (both engines)
-- A group row: a bold label spanning every column (analysis.report.builder.Group).
local function is_group_row(row, ncol)
  if #row.cells ~= 1 or row.cells[1].col_span ~= ncol then return false end
  local c = row.cells[1].contents
  return #c == 1 and (c[1].t == "Plain" or c[1].t == "Para") and #c[1].content == 1 and c[1].content[1].t == "Strong"
end

local MUTED_TYPST = 'rgb("#5d6874")'

-- In Typst a table's source line becomes the table's last (footer) row, so a page break can never
-- separate the two; the table itself stays breakable.
local function sources_into_tables()
  return {
    Blocks = function(blocks)
      if not is_format("typst") then return nil end
      local out = pandoc.List()
      local i = 1
      while i <= #blocks do
        local b, nxt = blocks[i], blocks[i + 1]
        if b.t == "Div" and b.identifier:match("^tbl%-") and nxt and nxt.t == "Div" and nxt.classes:includes("source") then
          local inlines = pandoc.Inlines({ pandoc.RawInline("typst", "#text(size: 7.5pt, fill: " .. MUTED_TYPST .. ")[") })
          for k, blk in ipairs(nxt.content) do
            if k > 1 then inlines:insert(pandoc.Space()) end
            inlines:extend(pandoc.utils.blocks_to_inlines({ blk }))
          end
          inlines:insert(pandoc.RawInline("typst", "]"))
          local placed = false
          b.content = b.content:walk({
            Table = function(t)
              if placed then return nil end
              placed = true
              local cell = pandoc.Cell({ pandoc.Plain(inlines) }, "AlignLeft", 1, #t.colspecs)
              t.foot = pandoc.TableFoot({ pandoc.Row({ cell }) })
              return t
            end,
          })
          out:insert(b)
          i = i + (placed and 2 or 1)
          if not placed then out:insert(nxt); i = i + 1 end
        else
          out:insert(b)
          i = i + 1
        end
      end
      return out
    end,
  }
end

local function style()
  return {
    Table = function(t)
      local total = 0
      for _, spec in ipairs(t.colspecs) do
        if type(spec[2]) == "number" then total = total + spec[2] end
      end
      if total > 0 then
        for i, spec in ipairs(t.colspecs) do
          if type(spec[2]) == "number" then t.colspecs[i] = { spec[1], spec[2] / total } end
        end
      end
      -- column-group headers (a header row above the column names) are centred over their columns
      if #t.head.rows > 1 then
        for r = 1, #t.head.rows - 1 do
          for _, cell in ipairs(t.head.rows[r].cells) do
            if cell.col_span > 1 then cell.alignment = "AlignCenter" end
          end
        end
      end
      -- in DOCX a group row has the paragraph style "Group Row" of the reference document (keep
      -- with next): Word never ends a page with it
      if is_format("docx") then
        for _, body in ipairs(t.bodies) do
          for _, row in ipairs(body.body) do
            if is_group_row(row, #t.colspecs) then
              row.cells[1].contents = { pandoc.Div({ pandoc.Para(row.cells[1].contents[1].content) }, { ["custom-style"] = "Group Row" }) }
            end
          end
        end
      end
      -- a column name longer than its column is hyphenated (in the report's language) instead of
      -- running into the next column; body cells keep breaking between words only.  Every header
      -- row is bold (also the column names under column groups)
      if is_format("typst") then
        for _, row in ipairs(t.head.rows) do
          for _, cell in ipairs(row.cells) do
            local blocks = pandoc.List()
            for _, b in ipairs(cell.contents) do
              if b.t == "Plain" or b.t == "Para" then
                local inl = pandoc.List({ pandoc.RawInline("typst", "#text(hyphenate: true, weight: \"bold\")[") })
                inl:extend(b.content)
                inl:insert(pandoc.RawInline("typst", "]"))
                blocks:insert(pandoc.Plain(inl))
              else
                blocks:insert(b)
              end
            end
            cell.contents = blocks
          end
        end
      end
      return t
    end,
    Div = function(div)
      for _, cls in ipairs({ "source", "colofon" }) do
        if div.classes:includes(cls) then
          if is_format("docx") then
            div.attributes["custom-style"] = cls == "source" and "Source" or "Colofon"
            return div
          elseif is_format("typst") then
            local size = cls == "source" and "7.5pt" or "8.5pt"
            local blocks = pandoc.List({ pandoc.RawBlock("typst", '#block(width: 100%, above: 0.5em, below: 1.3em)[#set text(size: ' .. size .. ', fill: rgb("#5d6874")); #set par(spacing: 0.5em)') })
            blocks:extend(div.content)
            blocks:insert(pandoc.RawBlock("typst", "]"))
            return blocks
          end
        end
      end
      return nil
    end,
  }
end

-- ------------------------------------------------------------------ group rows (Typst)
-- A group row (a bold label spanning every column, written by analysis.report.builder.GridTable) becomes
-- a Typst subheader, `table.header(level: 2)`: Typst never leaves it alone at the foot of a page
-- (it moves to the next page with the group's first row) and repeats it above the rows of its group
-- that continue on the next page.  pandoc writes the table; its group rows are then rewritten.
local GROUP_MARK = "/*popeval-group*/"

local function group_subheaders()
  return {
    Table = function(t)
      if not is_format("typst") then return nil end
      local marked = 0
      for _, body in ipairs(t.bodies) do
        for _, row in ipairs(body.body) do
          if is_group_row(row, #t.colspecs) then
            row.cells[1].contents[1].content:insert(1, pandoc.RawInline("typst", GROUP_MARK))
            marked = marked + 1
          end
        end
      end
      if marked == 0 then return nil end
      local typ = pandoc.write(pandoc.Pandoc({ t }), "typst")
      local n
      typ, n = typ:gsub("table%.cell%(([^)\n]*)%)%[/%*popeval%-group%*/(.-)%],\n", "table.header(level: 2, table.cell(%1)[%2]),\n")
      if n ~= marked then error("popeval.lua: " .. marked .. " group rows, " .. n .. " written as subheaders") end
      return pandoc.RawBlock("typst", typ)
    end,
  }
end

-- ------------------------------------------------------------------ the filter
if in_quarto then
  return { sources_into_tables(), style() }
end

-- A long path in a table cell comes as code spans cut after a "/" (so that the grid table's column
-- is as wide as its longest piece): the pieces are joined again, without the space between them.
-- The engines break a path after its "/" where the column needs it.
local function joined_paths()
  return {
    Inlines = function(inlines)
      local out = pandoc.Inlines({})
      local i = 1
      while i <= #inlines do
        local el = inlines[i]
        if el.t == "Code" then
          local text = el.text
          while text:sub(-1) == "/" and i + 2 <= #inlines
            and (inlines[i + 1].t == "Space" or inlines[i + 1].t == "SoftBreak")
            and inlines[i + 2].t == "Code" do
            text = text .. inlines[i + 2].text
            i = i + 2
          end
          out:insert(pandoc.Code(text, el.attr))
        else
          out:insert(el)
        end
        i = i + 1
      end
      return out
    end,
  }
end

local meta_holder = {}
return {
  joined_paths(),
  { Meta = function(m) meta_holder.meta = m end },
  { Pandoc = function(doc) return doc:walk(conditional(doc.meta)) end },
  { Pandoc = function(doc) return doc:walk(callouts(doc.meta)) end },
  { Pandoc = crossref },
  sources_into_figures(),
  figures(),
  sources_into_tables(),
  style(),
  group_subheaders(),
}
