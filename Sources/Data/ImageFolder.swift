// `imagefolder:PATH`: one subfolder per class, like torchvision.datasets.ImageFolder. Classes are the sorted
// subfolder names (label = index); samples are every .jpg/.jpeg/.png (any case) below a class folder, recursively,
// in sorted relative-path order. A class folder without images is an error naming it.
// Shape letters: K classes (subfolders), N samples.
import Foundation

public enum ImageFolder {
  /// Reads PATH/<class>/**/<image>. Files directly in PATH are ignored.
  public static func load(_ path: String) throws -> Dataset {
    let root = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    guard DataPaths.isDirectory(root) else {
      throw DataError.unreadable(path: root, reason: "not a folder")
    }
    let classNames = try DataPaths.subfolders(root)
    if classNames.isEmpty { throw DataError.noImages(folder: root) }
    var samples: [(relative: String, label: Int)] = []
    for (label, className) in classNames.enumerated() {
      let images = try DataPaths.images(under: root + "/" + className)
      if images.isEmpty { throw DataError.emptyClass(file: root + "/" + className, className: className) }
      samples += images.map { (className + "/" + $0, label) }
    }
    samples.sort { $0.relative < $1.relative }
    return Dataset(name: "imagefolder:\(root)", root: root, classNames: classNames,
                   samples: samples.map { Sample(path: root + "/" + $0.relative, label: $0.label) })
  }
}
