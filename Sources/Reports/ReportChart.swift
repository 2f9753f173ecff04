// Line charts as inline SVG for `rada report`: nice axis ticks (1, 2, 2.5, 5 x 10^k), one polyline per contiguous
// run of finite values (a null/NaN value leaves a gap), a dot for every point of a short series (so one point shows),
// and a legend under the plot. Plain strings in, one self-contained <svg> out: no scripts, fonts or images.
// Coordinates: data (x, y) -> pixels through `ChartAxis.position`, y grows downwards in SVG.
import Foundation
import Tensor
import Training

/// Escapes text for HTML/SVG element content and attribute values (both quote kinds).
public func htmlEscape(_ text: String) -> String {
  var out = ""
  out.reserveCapacity(text.utf8.count)
  for ch in text.unicodeScalars {
    switch ch {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"": out += "&quot;"
    case "'": out += "&#39;"
    default: out.unicodeScalars.append(ch)
    }
  }
  return out
}

/// The colours of the report (matplotlib's "tab10"), in the order series are given them.
public enum ReportPalette {
  public static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                              "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
  public static func color(_ index: Int) -> String { colors[index % colors.count] }
}

/// One axis: a data interval [lo, hi] widened to whole ticks, and the ticks on it.
public struct ChartAxis: Equatable {
  public var lo: Double
  public var hi: Double
  public var step: Double
  public var ticks: [Double]

  /// The smallest "nice" step (1, 2, 2.5 or 5 x 10^k; without 2.5 when `integral`) that cuts `span` into at
  /// most about `target` parts.
  public static func niceStep(span: Double, target: Int, integral: Bool = false) -> Double {
    let raw = span / Double(max(target, 1))
    let magnitude = pow(10, floor(log10(raw)))
    let fraction = raw / magnitude
    // 1e-9: 0.2 / 0.1 is 2.0000000000000004, which must still count as 2.
    let nice: Double = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 2.5 + 1e-9 && !integral ? 2.5
      : fraction <= 5 + 1e-9 ? 5 : 10
    return nice * magnitude
  }

  /// Axis covering every value in `values` (finite ones only; empty gives [0, 1]). `includeZero` pins 0 in the
  /// range (accuracy, learning rate, throughput); `integral` keeps steps >= 1 (optimiser steps on the x axis).
  public init(covering values: [Double], includeZero: Bool = false, integral: Bool = false, target: Int = 5) {
    let finite = values.filter(\.isFinite)
    // Within ±1e300 the span and the padding below stay finite (values at ±1.7e308 are drawn at the edge).
    func clamped(_ v: Double) -> Double { min(max(v, -1e300), 1e300) }
    var lo = clamped(finite.min() ?? 0), hi = clamped(finite.max() ?? 1)
    if includeZero { lo = min(lo, 0); hi = max(hi, 0) }
    if lo == hi {  // one value: widen around it so it sits inside the plot rather than on an edge
      let pad = lo == 0 ? 1 : abs(lo) * 0.1
      lo -= pad; hi += pad
      if includeZero && finite.allSatisfy({ $0 >= 0 }) { lo = max(lo, 0) }
    }
    if !(hi - lo).isNormal {  // subnormal values: a span too small to divide into ticks
      lo -= 1; hi += 1
    }
    var step = ChartAxis.niceStep(span: hi - lo, target: target, integral: integral)
    if integral { step = max(step, 1) }
    // Whole ticks around the data; the 1e-9 keeps a value on a tick from adding one more tick.
    let first = floor(lo / step + 1e-9)
    let last = max(ceil(hi / step - 1e-9), first + 1)  // a span under one (integral) step still gets one
    self.step = step
    self.lo = first * step
    self.hi = last * step
    // About `target` ticks; bounded in case rounding at extreme magnitudes makes more.
    let count = Checked.integer(last - first, in: 0...100) ?? 1
    self.ticks = (0...count).map { (first + Double($0)) * step }
  }

  /// Maps a data value to a pixel position: lo -> `from`, hi -> `to` (pass from > to for a y axis).
  public func position(of value: Double, from: Double, to: Double) -> Double {
    from + (value - lo) / (hi - lo) * (to - from)
  }

  /// Tick label: as many decimals as the step needs (2.5 -> "2.5"), exponent form for tiny or huge values.
  public func label(_ value: Double) -> String {
    if abs(value) < step * 1e-6 { return "0" }
    var decimals = 0
    while decimals < 12 {
      let scaled = step * pow(10, Double(decimals))
      if abs(scaled - scaled.rounded()) < 1e-6 * max(scaled, 1) { break }
      decimals += 1
    }
    let largest = max(abs(lo), abs(hi))
    if decimals > 4 || largest >= 1e6 {
      let exponent = Checked.integer(floor(log10(largest)), in: -400...400) ?? 0
      let stepExponent = Checked.integer(floor(log10(step) + 1e-9), in: -400...400) ?? exponent
      let mantissaDecimals = min(12, max(0, exponent - stepExponent))
      let mantissa = value / pow(10, Double(exponent))
      return String(format: "%.\(mantissaDecimals)fe%d", mantissa, exponent)
    }
    return String(format: "%.\(decimals)f", value)
  }
}

/// One line on a chart. `y` nil (or non-finite) is a missing value: the line breaks there.
public struct ChartSeries {
  public var name: String
  public var points: [(x: Double, y: Double?)]
  public var color: String
  /// Dashed lines mark the parts of a total drawn on the same chart (train/ce under train/loss), so a part equal
  /// to the total still lets the total show through.
  public var isDashed: Bool

  public init(name: String, points: [(x: Double, y: Double?)], color: String, isDashed: Bool = false) {
    self.name = name; self.points = points; self.color = color; self.isDashed = isDashed
  }

  /// Contiguous runs of finite points; each becomes one polyline (or one dot when it has a single point).
  public var segments: [[(x: Double, y: Double)]] {
    var result: [[(x: Double, y: Double)]] = [], current: [(x: Double, y: Double)] = []
    for point in points {
      if let y = point.y, y.isFinite, point.x.isFinite {
        current.append((point.x, y))
      } else if !current.isEmpty {
        result.append(current); current = []
      }
    }
    if !current.isEmpty { result.append(current) }
    return result
  }
}

/// Sizes of a chart in SVG user units (the SVG scales with the page through its viewBox).
public struct ChartLayout {
  public var width = 600.0
  public var plotHeight = 240.0
  public var marginLeft = 72.0
  public var marginRight = 20.0
  public var marginTop = 34.0
  /// Tick labels and the x-axis title.
  public var marginBottom = 46.0
  public var legendRowHeight = 18.0
  /// Series with at most this many finite points get a dot on every point.
  public var dotLimit = 30

  public init() {}
  public var plotLeft: Double { marginLeft }
  public var plotRight: Double { width - marginRight }
  public var plotTop: Double { marginTop }
  public var plotBottom: Double { marginTop + plotHeight }
}

/// A titled line chart with axes, grid, ticks, axis titles and a legend.
public struct LineChart {
  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var series: [ChartSeries]
  public var includeZero: Bool
  public var layout = ChartLayout()

  public init(title: String, xLabel: String, yLabel: String, series: [ChartSeries], includeZero: Bool = false) {
    self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
    self.includeZero = includeZero
  }

  private var finitePoints: [(x: Double, y: Double)] { series.flatMap { $0.segments.flatMap { $0 } } }
  /// Six x ticks rather than five: whole steps then divide common run lengths (12 -> 0, 2, ..., 12).
  public var xAxis: ChartAxis { ChartAxis(covering: finitePoints.map(\.x), integral: true, target: 6) }
  public var yAxis: ChartAxis { ChartAxis(covering: finitePoints.map(\.y), includeZero: includeZero) }

  /// Pixel position of a data point (the same mapping the polylines use).
  public func pixel(x: Double, y: Double) -> (x: Double, y: Double) { pixel(x: x, y: y, xAxis: xAxis, yAxis: yAxis) }

  /// `pixel(x:y:)` with the axes computed once by the caller (each axis scans every point: per point that
  /// made 20,000 metric lines take two minutes).
  func pixel(x: Double, y: Double, xAxis: ChartAxis, yAxis: ChartAxis) -> (x: Double, y: Double) {
    (xAxis.position(of: x, from: layout.plotLeft, to: layout.plotRight),
     yAxis.position(of: y, from: layout.plotBottom, to: layout.plotTop))
  }

  /// Legend entries laid out left to right, wrapping; returns (x, row) per series and the number of rows.
  private func legendPlacement() -> (places: [(x: Double, row: Int)], rows: Int) {
    var places: [(x: Double, row: Int)] = [], x = layout.plotLeft, row = 0
    for entry in series {
      // About 6.5 units per character at 12 px sans-serif, plus the swatch.
      let width = 30 + 6.5 * Double(min(entry.name.count, 60))
      if x + width > layout.width - 4 && x > layout.plotLeft { x = layout.plotLeft; row += 1 }
      places.append((x, row)); x += width + 10
    }
    return (places, series.isEmpty ? 0 : row + 1)
  }

  public func svg() -> String {
    let l = layout
    let legend = legendPlacement()
    let height = l.plotBottom + l.marginBottom + Double(legend.rows) * l.legendRowHeight + 6
    func f(_ v: Double) -> String { String(format: "%.2f", v) }
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 \(f(l.width)) \(f(height))\" "
      + "width=\"\(f(l.width))\" height=\"\(f(height))\" role=\"img\" aria-label=\"\(htmlEscape(title))\">\n"
    s += "<title>\(htmlEscape(title))</title>\n"
    s += "<text class=\"chart-title\" x=\"\(f(l.width / 2))\" y=\"20\" text-anchor=\"middle\">\(htmlEscape(title))</text>\n"
    let points = finitePoints
    guard !points.isEmpty else {
      s += "<rect x=\"\(f(l.plotLeft))\" y=\"\(f(l.plotTop))\" width=\"\(f(l.plotRight - l.plotLeft))\" "
        + "height=\"\(f(l.plotHeight))\" fill=\"none\" stroke=\"#ccc\"/>\n"
      s += "<text class=\"no-data\" x=\"\(f((l.plotLeft + l.plotRight) / 2))\" y=\"\(f(l.plotTop + l.plotHeight / 2))\" "
        + "text-anchor=\"middle\">no data</text>\n</svg>"
      return s
    }
    let xa = xAxis, ya = yAxis
    // Grid and tick labels.
    s += "<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n"
    for t in ya.ticks {
      let y = ya.position(of: t, from: l.plotBottom, to: l.plotTop)
      s += "<line x1=\"\(f(l.plotLeft))\" y1=\"\(f(y))\" x2=\"\(f(l.plotRight))\" y2=\"\(f(y))\"/>\n"
    }
    for t in xa.ticks {
      let x = xa.position(of: t, from: l.plotLeft, to: l.plotRight)
      s += "<line x1=\"\(f(x))\" y1=\"\(f(l.plotTop))\" x2=\"\(f(x))\" y2=\"\(f(l.plotBottom))\"/>\n"
    }
    s += "</g>\n<g class=\"axis\" font-size=\"11\" fill=\"#333\">\n"
    for t in ya.ticks {
      let y = ya.position(of: t, from: l.plotBottom, to: l.plotTop)
      s += "<text x=\"\(f(l.plotLeft - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(htmlEscape(ya.label(t)))</text>\n"
    }
    for t in xa.ticks {
      let x = xa.position(of: t, from: l.plotLeft, to: l.plotRight)
      s += "<text x=\"\(f(x))\" y=\"\(f(l.plotBottom + 16))\" text-anchor=\"middle\">\(htmlEscape(xa.label(t)))</text>\n"
    }
    s += "</g>\n"
    s += "<rect x=\"\(f(l.plotLeft))\" y=\"\(f(l.plotTop))\" width=\"\(f(l.plotRight - l.plotLeft))\" "
      + "height=\"\(f(l.plotHeight))\" fill=\"none\" stroke=\"#888\"/>\n"
    s += "<text class=\"axis-title\" x=\"\(f((l.plotLeft + l.plotRight) / 2))\" y=\"\(f(l.plotBottom + 36))\" "
      + "text-anchor=\"middle\">\(htmlEscape(xLabel))</text>\n"
    let yMid = (l.plotTop + l.plotBottom) / 2
    s += "<text class=\"axis-title\" x=\"16\" y=\"\(f(yMid))\" text-anchor=\"middle\" "
      + "transform=\"rotate(-90 16 \(f(yMid)))\">\(htmlEscape(yLabel))</text>\n"
    // Series: one polyline per contiguous segment; dots on every point when all series are short (the same
    // for every series of a chart), and on lone points always.
    let dotted = series.allSatisfy { $0.segments.reduce(0) { $0 + $1.count } <= l.dotLimit }
    for entry in series {
      let color = htmlEscape(entry.color)
      let segments = entry.segments
      let dash = entry.isDashed ? " stroke-dasharray=\"6 4\"" : ""
      s += "<g class=\"series\" data-series=\"\(htmlEscape(entry.name))\">\n"
      for segment in segments {
        let pixels = segment.map { pixel(x: $0.x, y: $0.y, xAxis: xa, yAxis: ya) }
        if segment.count > 1 {
          s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) stroke-linejoin=\"round\" points=\""
            + pixels.map { "\(f($0.x)),\(f($0.y))" }.joined(separator: " ") + "\"><title>"
            + htmlEscape(entry.name) + "</title></polyline>\n"
        }
        if dotted || segment.count == 1 {
          for (point, pixel) in zip(segment, pixels) {
            s += "<circle cx=\"\(f(pixel.x))\" cy=\"\(f(pixel.y))\" r=\"3\" fill=\"\(color)\"><title>"
              + htmlEscape("\(entry.name), \(xLabel) \(String(format: "%g", point.x)): \(String(format: "%.6g", point.y))")
              + "</title></circle>\n"
          }
        }
      }
      s += "</g>\n"
    }
    // Legend under the plot.
    s += "<g class=\"legend\" font-size=\"12\" fill=\"#222\">\n"
    for (entry, place) in zip(series, legend.places) {
      let y = l.plotBottom + l.marginBottom + Double(place.row) * l.legendRowHeight + 8
      s += "<line x1=\"\(f(place.x))\" y1=\"\(f(y))\" x2=\"\(f(place.x + 22))\" y2=\"\(f(y))\" stroke=\"\(htmlEscape(entry.color))\" "
        + "stroke-width=\"3\"\(entry.isDashed ? " stroke-dasharray=\"6 3\"" : "")/><text x=\"\(f(place.x + 27))\" y=\"\(f(y + 4))\">\(htmlEscape(entry.name))</text>\n"
    }
    s += "</g>\n</svg>"
    return s
  }
}
