import XCTest
@testable import Graph
@testable import Passes

/// The record file rendered from typed entries: quantized layers in order with their prune fields, then layers that
/// were only pruned (by name), names escaped.
final class QuantRecordTests: XCTestCase {
    func testQuantizedAndPrunedLayersWithAwkwardNames() {
        var record = QuantRecord()
        record.entries = [QuantRecordEntry(
            layer: "conv \"a\"", op: "Conv", actType: .int8, weightType: .int4, channelWise: true, clipMin: 0,
            clipMax: 6, scaleD: 0.5, offsetD: -128, scaleW: [0.25, 0.125], clipsFrom: .ifmr)]
        record.prune["conv \"a\""] = PruneRecord(keptChannels: [0, 2])
        record.prune["fc\nb"] = PruneRecord(twoOfFour: (zeroed: 6, updateFreq: 3))
        XCTAssertEqual(record.text, """
            record {
              key: "conv \\"a\\""
              value {
                scale_d: 0.5
                offset_d: -128
                scale_w: 0.25
                scale_w: 0.125
                offset_w: 0
                offset_w: 0
                act_type: INT8
                wts_type: INT4
                clip_min: 0.0
                clip_max: 6.0
                kept_channels: "0,2"
              }
            }
            record {
              key: "fc\\nb"
              value {
                two_of_four_zeroed: 6
                update_freq: 3
              }
            }

            """)
    }

    func testNoEntriesIsAnEmptyFile() {
        XCTAssertEqual(QuantRecord().text, "\n")
    }
}
