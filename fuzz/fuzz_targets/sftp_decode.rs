//! The SFTP request decoder (`codec::decode_request`) and the client-side response decoder
//! on arbitrary packet bodies (type byte + payload).
//!
//! Never panics; whatever decodes is encoded again with the codec's encoders and must
//! decode to the same value (encode → decode = identity): requests with
//! `encode_request`, responses with the server's reply encoders (`encode_status`,
//! `encode_handle`, `begin_data`, `encode_name`, `encode_attrs`, `encode_version`,
//! `encode_extended_reply`, `encode_statvfs_reply`, `encode_limits_reply`).

#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sftpgo_sftp::codec::{
    self, DecodeError, FileAttrs, LimitsReply, NameEntry, PacketReader, Request, Response,
    StatVfsReply, decode_request, decode_response,
};

fuzz_target!(|data: &[u8]| {
    let packet = Bytes::copy_from_slice(data);

    match decode_request(packet.clone()) {
        Ok(req) => {
            let _ = req.name();
            assert_eq!(req.id().is_none(), matches!(req, Request::Init { .. }));
            let mut buf = BytesMut::new();
            codec::encode_request(&mut buf, &req);
            assert_eq!(
                decode_request(body(buf)),
                Ok(req),
                "request does not round-trip"
            );
        }
        Err(DecodeError::Empty) => assert!(data.is_empty()),
        Err(DecodeError::UnknownType { ty, id }) => {
            assert_eq!(ty, data[0]);
            if let Some(id) = id {
                assert_eq!(id.to_be_bytes()[..], data[1..5]);
            }
        }
        Err(DecodeError::Truncated) => {}
    }

    if let Ok(resp) = decode_response(packet.clone()) {
        if let Some(again) = encode_response(&resp) {
            assert_eq!(
                decode_response(body(again)),
                Ok(resp.clone()),
                "response does not round-trip"
            );
        }
        if let Response::ExtendedReply { id, data } = &resp {
            if let Ok(s) = StatVfsReply::decode(data) {
                let mut buf = BytesMut::new();
                codec::encode_statvfs_reply(&mut buf, *id, &s);
                let Ok(Response::ExtendedReply { data, .. }) = decode_response(body(buf)) else {
                    panic!("statvfs reply does not decode");
                };
                assert_eq!(StatVfsReply::decode(&data), Ok(s));
            }
            if let Ok(l) = LimitsReply::decode(data) {
                let mut buf = BytesMut::new();
                codec::encode_limits_reply(
                    &mut buf,
                    *id,
                    l.max_packet_len,
                    l.max_read_len,
                    l.max_write_len,
                    l.max_open_handles,
                );
                let Ok(Response::ExtendedReply { data, .. }) = decode_response(body(buf)) else {
                    panic!("limits reply does not decode");
                };
                assert_eq!(LimitsReply::decode(&data), Ok(l));
            }
        }
    }

    // ATTRS on their own: what decodes encodes to the flags of the fields present.
    let mut b = packet;
    if let Ok(a) = FileAttrs::decode(&mut b) {
        let mut buf = BytesMut::new();
        a.encode(&mut buf);
        let mut again = buf.freeze();
        assert_eq!(FileAttrs::decode(&mut again), Ok(a));
        assert!(again.is_empty());
    }
});

/// The body of the one packet in `buf`, framed by a `PacketReader` as the server would.
fn body(buf: BytesMut) -> Bytes {
    let len = buf.len();
    let mut reader = PacketReader::new(len);
    reader.push_bytes(buf.freeze());
    let p = reader
        .next_packet()
        .expect("an encoded packet frames")
        .expect("an encoded packet is complete");
    assert_eq!(p.len() + 4, len);
    assert_eq!(reader.buffered(), 0);
    p
}

/// `resp` encoded by the server's encoders, where one encodes all it holds.
fn encode_response(resp: &Response) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    match resp {
        Response::Version {
            version,
            extensions,
        } => {
            let ext: Vec<(&[u8], &[u8])> = extensions
                .iter()
                .map(|(n, d)| (n.as_ref(), d.as_ref()))
                .collect();
            codec::encode_version(&mut buf, *version, &ext);
        }
        // The server's STATUS messages are text.
        Response::Status { id, code, msg } => {
            codec::encode_status(&mut buf, *id, *code, std::str::from_utf8(msg).ok()?)
        }
        Response::Handle { id, handle } => codec::encode_handle(&mut buf, *id, handle),
        Response::Data { id, data } => {
            let slot = codec::begin_data(&mut buf, *id);
            buf.put_slice(data);
            slot.finish(&mut buf);
        }
        Response::Name { id, entries } => codec::encode_name(
            &mut buf,
            *id,
            entries.iter().map(|(f, l, a)| NameEntry {
                filename: f,
                longname: l,
                attrs: a,
            }),
        ),
        Response::Attrs { id, attrs } => codec::encode_attrs(&mut buf, *id, attrs),
        Response::ExtendedReply { id, data } => codec::encode_extended_reply(&mut buf, *id, data),
    }
    Some(buf)
}
