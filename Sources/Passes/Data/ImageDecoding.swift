import CPNG
import CTurboJPEG
import Foundation

/// An 8-bit image, rows of pixels of `channels` interleaved values (RGB, or 1 for gray).
struct DecodedImage: Sendable {
    var path: String
    var pixels: [UInt8]
    var height: Int
    var width: Int
    var channels: Int

    /// A JPEG (libjpeg-turbo) or PNG (libpng) file as RGB, or as gray (PIL's "L": ITU-R 601-2 luma) when
    /// `channels` is 1. Alpha is dropped, as PIL's convert("RGB") does.
    static func read(_ path: String, channels: Int) throws -> DecodedImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(path: path, "cannot read the file")
        }
        let rgb: DecodedImage
        if data.starts(with: [0xFF, 0xD8]) {
            rgb = try decodeJPEG(data, path: path)
        } else if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            rgb = try decodePNG(data, path: path)
        } else {
            throw DataError(path: path, "neither a JPEG nor a PNG image")
        }
        return channels == 1 ? rgb.gray() : rgb
    }

    static func decodeJPEG(_ data: Data, path: String) throws -> DecodedImage {
        guard let handle = tjInitDecompress() else { throw DataError(path: path, "libjpeg-turbo could not start") }
        defer { tjDestroy(handle) }
        func failure() -> DataError {
            DataError(path: path, "does not decode as JPEG: \(String(cString: tjGetErrorStr2(handle)))")
        }
        return try data.withUnsafeBytes { raw -> DecodedImage in
            let bytes = raw.bindMemory(to: UInt8.self).baseAddress!
            let size = UInt(raw.count)
            var w: Int32 = 0
            var h: Int32 = 0
            var subsampling: Int32 = 0
            var colorspace: Int32 = 0
            guard tjDecompressHeader3(handle, bytes, size, &w, &h, &subsampling, &colorspace) == 0 else {
                throw failure()
            }
            try checkSize(Int(h), Int(w), path: path)
            var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
            let status = pixels.withUnsafeMutableBufferPointer {
                tjDecompress2(handle, bytes, size, $0.baseAddress, w, 0, h, Int32(TJPF_RGB.rawValue), 0)
            }
            // A warning (a truncated but displayable file) is still an error here: the data must be whole.
            guard status == 0 else { throw failure() }
            return DecodedImage(path: path, pixels: pixels, height: Int(h), width: Int(w), channels: 3)
        }
    }

    static func decodePNG(_ data: Data, path: String) throws -> DecodedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        func failure() -> DataError {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return DataError(path: path, "does not decode as PNG: \(message)")
        }
        return try data.withUnsafeBytes { raw -> DecodedImage in
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else { throw failure() }
            image.format = 3  // PNG_FORMAT_RGBA: colour and alpha, 8 bits (gray and palettes expanded)
            try checkSize(Int(image.height), Int(image.width), path: path)
            let w = Int(image.width)
            let h = Int(image.height)
            var rgba = [UInt8](repeating: 0, count: w * h * 4)
            let ok = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else { throw failure() }
            var pixels = [UInt8](repeating: 0, count: w * h * 3)
            for i in 0..<(w * h) {
                pixels[i * 3] = rgba[i * 4]
                pixels[i * 3 + 1] = rgba[i * 4 + 1]
                pixels[i * 3 + 2] = rgba[i * 4 + 2]
            }
            return DecodedImage(path: path, pixels: pixels, height: h, width: w, channels: 3)
        }
    }

    /// Refuses empty images and ones whose pixels would not fit the input limit.
    static func checkSize(_ h: Int, _ w: Int, path: String) throws {
        guard h > 0, w > 0 else { throw DataError(path: path, "is an empty image (\(h)×\(w))") }
        guard h <= 1 << 16, w <= 1 << 16 else { throw DataError(path: path, "is \(h)×\(w): over 65536 pixels a side") }
    }

    /// PIL's RGB → L: (R·19595 + G·38470 + B·7471 + 2^15) >> 16.
    func gray() -> DecodedImage {
        var out = [UInt8](repeating: 0, count: height * width)
        for i in 0..<out.count {
            let r = UInt32(pixels[i * 3])
            let g = UInt32(pixels[i * 3 + 1])
            let b = UInt32(pixels[i * 3 + 2])
            out[i] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
        }
        return DecodedImage(path: path, pixels: out, height: height, width: width, channels: 1)
    }

    func cropped(top: Int, left: Int, height h: Int, width w: Int) -> DecodedImage {
        var out = [UInt8]()
        out.reserveCapacity(h * w * channels)
        for y in top..<(top + h) {
            let start = (y * width + left) * channels
            out += pixels[start..<(start + w * channels)]
        }
        return DecodedImage(path: path, pixels: out, height: h, width: w, channels: channels)
    }

    func flipped() -> DecodedImage {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                let from = (y * width + (width - 1 - x)) * channels
                let to = (y * width + x) * channels
                for k in 0..<channels { out[to + k] = pixels[from + k] }
            }
        }
        return DecodedImage(path: path, pixels: out, height: height, width: width, channels: channels)
    }
}
