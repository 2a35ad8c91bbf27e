using System.Globalization;
using ScottPlot;

// reloc-bench-plot: PNG plots from the TSV files the bench/*.sh scripts write (first line: column names).
//
//   reloc-bench-plot line --in F.tsv --out P.png --x COL --y COL [--series COL] [--xscale K] [--yscale K]
//                         [--title T] [--xlabel L] [--ylabel L] [--hline VALUE=LABEL]... [--step]
//       one line per distinct value of the series column (x and y multiplied by the scales)
//   reloc-bench-plot bars --in F.tsv --out P.png --label COL --value COL [--group COL] [--yscale K]
//                         [--title T] [--xlabel L] [--ylabel L] [--hline VALUE=LABEL]... [--decimals N]
//       one bar per row (categories in order of appearance), side by side per distinct group value
//
// --where COL=VALUE keeps only the rows whose column has that value (repeatable).
// --legend UpperLeft|LowerRight|... (inside) or Right|Bottom (outside); --ymin/--ymax fix the y axis;
// --width/--height in pixels (800x450); line: --logy / --logx (log10 y / x axis), --step (staircase lines).

return Cli.Run(args);

internal static class Cli
{
    private static readonly Color[] Palette =
    [
        Color.FromHex("#1f77b4"), Color.FromHex("#ff7f0e"), Color.FromHex("#2ca02c"), Color.FromHex("#d62728"),
        Color.FromHex("#9467bd"), Color.FromHex("#8c564b"), Color.FromHex("#e377c2"), Color.FromHex("#7f7f7f"),
    ];

    public static int Run(string[] args)
    {
        if (args.Length < 1 || args[0] is not ("line" or "bars"))
        {
            Console.Error.WriteLine("usage: reloc-bench-plot line|bars --in F.tsv --out P.png ... (see Program.cs)");
            return 2;
        }
        try
        {
            var opts = Options.Parse(args[1..]);
            var table = Table.Load(opts.One("in"), opts.All("where"));
            var plot = new Plot();
            if (args[0] == "line") Line(plot, table, opts);
            else Bars(plot, table, opts);
            foreach (var h in opts.All("hline"))
            {
                var eq = h.IndexOf('=');
                var value = double.Parse(eq < 0 ? h : h[..eq], CultureInfo.InvariantCulture);
                // On a log y axis the data are log10 values (Line), so is the line.
                var line = plot.Add.HorizontalLine(args[0] == "line" && opts.Has("logy") ? Math.Log10(value) : value);
                line.LinePattern = LinePattern.Dashed;
                line.LineWidth = 1.5f;
                line.Color = Colors.Gray;
                if (eq >= 0) line.LegendText = h[(eq + 1)..];
            }
            plot.Title(opts.Get("title") ?? "");
            plot.XLabel(opts.Get("xlabel") ?? "");
            plot.YLabel(opts.Get("ylabel") ?? "");
            if (plot.Legend.ManualItems.Count > 0 || plot.GetPlottables().Any(p => p.LegendItems.Any(i => !string.IsNullOrEmpty(i.LabelText))))
                plot.ShowLegend(Alignment.LowerRight);
            if (opts.Get("legend") is { } where)
            {
                if (Enum.TryParse<Edge>(where, ignoreCase: true, out var edge)) plot.ShowLegend(edge); // outside the data area
                else plot.ShowLegend(Enum.Parse<Alignment>(where, ignoreCase: true));
            }
            if (opts.Get("ymin") is not null || opts.Get("ymax") is not null)
            {
                plot.Axes.AutoScale();
                var limits = plot.Axes.GetLimits();
                plot.Axes.SetLimitsY(opts.Double("ymin", limits.Bottom), opts.Double("ymax", limits.Top));
            }
            var output = opts.One("out");
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
            plot.SavePng(output, int.Parse(opts.Get("width") ?? "800"), int.Parse(opts.Get("height") ?? "450"));
            Console.Error.WriteLine($"reloc-bench-plot: wrote {output}");
            return 0;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or KeyNotFoundException)
        {
            Console.Error.WriteLine($"reloc-bench-plot: {ex.Message}");
            return 2;
        }
    }

    private static void Line(Plot plot, Table table, Options opts)
    {
        string x = opts.One("x"), y = opts.One("y"), series = opts.Get("series") ?? "";
        double xs = opts.Double("xscale", 1), ys = opts.Double("yscale", 1);
        var groups = series.Length == 0
            ? [("", table.Rows)]
            : table.Rows.GroupBy(r => table.Cell(r, series)).Select(g => (g.Key, g.ToList())).ToList();
        int i = 0;
        foreach (var (name, rows) in groups)
        {
            var px = rows.Select(r => table.Number(r, x) * xs).ToArray();
            var py = rows.Select(r => table.Number(r, y) * ys).ToArray();
            if (opts.Has("logy")) py = py.Select(v => Math.Log10(Math.Max(v, 1e-9))).ToArray();
            if (opts.Has("logx")) px = px.Select(v => Math.Log10(Math.Max(v, 1e-9))).ToArray();
            var s = plot.Add.Scatter(px, py, Palette[i++ % Palette.Length]);
            s.MarkerSize = px.Length > 40 ? 0 : 5;
            s.LineWidth = 2;
            s.ConnectStyle = opts.Has("step") ? ConnectStyle.StepHorizontal : ConnectStyle.Straight;
            if (name.Length > 0) s.LegendText = (opts.Get("series-prefix") ?? "") + name;
        }
        // Log scale the ScottPlot 5 way: the data are log10 values, ticks at the powers of ten labelled back.
        ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = v => Math.Pow(10, v).ToString("G4", CultureInfo.InvariantCulture),
        };
        if (opts.Has("logy")) plot.Axes.Left.TickGenerator = LogTicks();
        if (opts.Has("logx")) plot.Axes.Bottom.TickGenerator = LogTicks();
    }

    private static void Bars(Plot plot, Table table, Options opts)
    {
        string label = opts.One("label"), value = opts.One("value"), group = opts.Get("group") ?? "";
        double ys = opts.Double("yscale", 1);
        int decimals = int.Parse(opts.Get("decimals") ?? "2", CultureInfo.InvariantCulture);
        var categories = table.Rows.Select(r => table.Cell(r, label)).Distinct().ToList();
        var groups = group.Length == 0 ? [""] : table.Rows.Select(r => table.Cell(r, group)).Distinct().ToList();
        double width = 0.8 / groups.Count;
        var bars = new List<Bar>();
        foreach (var row in table.Rows)
        {
            int c = categories.IndexOf(table.Cell(row, label));
            int g = group.Length == 0 ? 0 : groups.IndexOf(table.Cell(row, group));
            double v = table.Number(row, value) * ys;
            bars.Add(new Bar
            {
                Position = c - 0.4 + width * (g + 0.5),
                Value = v,
                Size = width * 0.92,
                FillColor = Palette[g % Palette.Length],
                Label = v.ToString("F" + decimals, CultureInfo.InvariantCulture),
            });
        }
        var plottable = plot.Add.Bars(bars);
        plottable.ValueLabelStyle.FontSize = 11;
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, categories.Count).Select(c => (double)c).ToArray(), categories.ToArray());
        plot.Axes.Margins(bottom: 0, top: 0.15);
        if (group.Length > 0)
            for (int g = 0; g < groups.Count; g++)
                plot.Legend.ManualItems.Add(new LegendItem { LabelText = (opts.Get("group-prefix") ?? "") + groups[g], FillColor = Palette[g % Palette.Length] });
    }
}

internal sealed class Options
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{args[i]}'");
            var key = args[i][2..];
            var value = key is "step" or "logy" or "logx" ? "" : i + 1 < args.Length ? args[++i] : throw new ArgumentException($"--{key} needs a value");
            if (!o._values.TryGetValue(key, out var list)) o._values[key] = list = [];
            list.Add(value);
        }
        return o;
    }

    public bool Has(string key) => _values.ContainsKey(key);
    public string? Get(string key) => _values.TryGetValue(key, out var l) ? l[^1] : null;
    public string One(string key) => Get(key) ?? throw new ArgumentException($"--{key} is required");
    public IReadOnlyList<string> All(string key) => _values.TryGetValue(key, out var l) ? l : [];
    public double Double(string key, double fallback) => Get(key) is { } v ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
}

internal sealed class Table
{
    private readonly Dictionary<string, int> _columns;

    private Table(Dictionary<string, int> columns, List<string[]> rows)
    {
        _columns = columns;
        Rows = rows;
    }

    public List<string[]> Rows { get; }

    public static Table Load(string path, IReadOnlyList<string> filters)
    {
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        if (lines.Count == 0) throw new FormatException($"{path} is empty");
        var header = lines[0].Split('\t');
        var columns = header.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i);
        var table = new Table(columns, lines.Skip(1).Select(l => l.Split('\t')).ToList());
        foreach (var f in filters)
        {
            var eq = f.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"--where '{f}': expected COL=VALUE");
            var (col, want) = (f[..eq], f[(eq + 1)..]);
            table.Rows.RemoveAll(r => table.Cell(r, col) != want);
        }
        if (table.Rows.Count == 0) throw new FormatException($"{path}: no rows to plot");
        return table;
    }

    public string Cell(string[] row, string column) =>
        _columns.TryGetValue(column, out var i)
            ? i < row.Length ? row[i] : ""
            : throw new KeyNotFoundException($"no column '{column}' (have: {string.Join(", ", _columns.Keys)})");

    public double Number(string[] row, string column) =>
        double.Parse(Cell(row, column), NumberStyles.Float, CultureInfo.InvariantCulture);
}
