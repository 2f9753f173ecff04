// The entry point of the libFuzzer build (-sanitize=fuzzer -DLIBFUZZER, launch/fuzz/libfuzzer.sh): SwiftPM
// links an executable's @main as its `main`, so libFuzzer's own main is not used; this one hands the command line
// to libFuzzer's driver with the target chosen by $RADA_FUZZ_TARGET.
#if LIBFUZZER
import Foundation

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
struct LibFuzzerMain {
  static func main() {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
      guard let bytes else { return 0 }
      return fuzzOneInput(bytes, count)
    })
  }
}
#endif
