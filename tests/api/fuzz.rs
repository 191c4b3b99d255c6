//! Every request decoder and validator of every service, fed hostile messages through gRPC:
//! random bytes, and messages built field by field from the descriptors with values chosen to
//! hurt (NUL and other control characters, huge and non-ASCII text, extreme numbers, NaN,
//! unknown enum values, timestamps out of range, nested messages). Whatever the message, the
//! answer is a status a client can act on — never INTERNAL or UNKNOWN, never a dropped
//! connection — and the server keeps serving.
//!
//! The cases come from proptest's deterministic runner (the same cases on every run), a few
//! per method so the whole sweep stays a matter of seconds.

use std::time::Duration;

use bytes::{Buf, BufMut};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use prost::Message;
use prost::encoding::{DecodeContext, WireType};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    Value,
};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use crate::support::{TestApp, TestDb, authed, create_user, spawn_app};

/// Structured messages per method.
const STRUCTURED_CASES: usize = 6;
/// Random byte strings per method.
const RAW_CASES: usize = 2;

/// A request whose bytes are sent as they are.
#[derive(Clone, Debug, Default, PartialEq)]
struct Raw(Vec<u8>);

impl Message for Raw {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Any answer: its fields are not read.
#[derive(Clone, PartialEq, prost::Message)]
struct Ignored {}

/// A small deterministic generator (xorshift64*), seeded by proptest.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("small")
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, values: &[T]) -> T {
        values[self.below(values.len())].clone()
    }
}

fn hostile_text(dice: &mut Dice) -> String {
    let uuid = uuid::Uuid::from_u64_pair(dice.next(), dice.next()).to_string();
    dice.pick(&[
        String::new(),
        " ".into(),
        "\u{0}".into(),
        format!("a\u{0}{uuid}"),
        "\u{1b}[2J\r\n\u{7f}".into(),
        "\u{202e}evil\u{200b}".into(),
        "é".repeat(300),
        "x".repeat(20_000),
        uuid,
        "+224 621 23 45 67".into(),
        "00224621234567".into(),
        "MP261130.6186.A75896".into(),
        "2026-11-30".into(),
        "'; DROP TABLE payments; --".into(),
        "%00%ff".into(),
        "collections.payments.record".into(),
    ])
}

fn value(dice: &mut Dice, kind: &Kind, depth: usize) -> Value {
    match kind {
        Kind::Double => Value::F64(dice.pick(&[
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e308,
            -1e-308,
            9.5092,
            -13.7122,
            91.0,
        ])),
        Kind::Float => Value::F32(dice.pick(&[0.0, f32::NAN, f32::INFINITY, -1.0, 3.4e38])),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(dice.pick(&[0, 1, -1, i32::MIN, i32::MAX, 12, 2026, 1_000_000]))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(dice.pick(&[
            0,
            1,
            -1,
            i64::MIN,
            i64::MAX,
            500_000,
            253_402_300_800,
            -62_135_596_801,
        ])),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(dice.pick(&[0, 1, u32::MAX])),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(dice.pick(&[0, 1, u64::MAX])),
        Kind::Bool => Value::Bool(dice.chance(50)),
        Kind::String => Value::String(hostile_text(dice)),
        Kind::Bytes => {
            let len = dice.below(64);
            Value::Bytes(
                (0..len)
                    .map(|_| dice.next() as u8)
                    .collect::<Vec<_>>()
                    .into(),
            )
        }
        Kind::Enum(descriptor) => {
            let known: Vec<i32> = descriptor.values().map(|v| v.number()).collect();
            Value::EnumNumber(if dice.chance(80) {
                dice.pick(&known)
            } else {
                dice.pick(&[-1, 999, i32::MAX])
            })
        }
        Kind::Message(descriptor) => Value::Message(message(dice, descriptor, depth + 1)),
    }
}

fn field_value(dice: &mut Dice, field: &FieldDescriptor, depth: usize) -> Value {
    if field.is_map() {
        // Maps are left empty: no request of the API has one a client fills.
        return Value::Map(Default::default());
    }
    let kind = field.kind();
    if field.is_list() {
        let len = dice.pick(&[0, 1, 3, 300]);
        return Value::List((0..len).map(|_| value(dice, &kind, depth)).collect());
    }
    value(dice, &kind, depth)
}

fn message(dice: &mut Dice, descriptor: &MessageDescriptor, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    if depth > 3 {
        return message;
    }
    for field in descriptor.fields() {
        if dice.chance(75) {
            let value = field_value(dice, &field, depth);
            message.set_field(&field, value);
        }
    }
    message
}

/// The unary and server-streaming methods of the API (client streams are left out: their
/// messages go through the same decoders as the server-streaming ones).
fn methods(pool: &DescriptorPool) -> Vec<MethodDescriptor> {
    pool.services()
        .filter(|service| service.full_name().starts_with("akig."))
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .filter(|method| !method.is_client_streaming())
        .collect()
}

async fn send<M: Message + Send + 'static>(
    app: &TestApp,
    method: &MethodDescriptor,
    message: M,
    token: &str,
) -> Code {
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.expect("ready");
    let path = PathAndQuery::try_from(path).expect("path");
    let codec = tonic_prost::ProstCodec::<M, Ignored>::default();
    let call = async {
        if method.is_server_streaming() {
            let mut stream = grpc
                .server_streaming(authed(message, token), path, codec)
                .await?
                .into_inner();
            // The first message or the end: the request was parsed by then.
            stream.message().await.map(|_| ())
        } else {
            grpc.unary(authed(message, token), path, codec)
                .await
                .map(|_| ())
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), call).await {
        Ok(Ok(())) => Code::Ok,
        Ok(Err(status)) => status.code(),
        // A stream that is still open after its request was accepted.
        Err(_) => Code::Ok,
    }
}

#[tokio::test]
async fn hostile_messages_to_every_method_get_statuses_a_client_can_act_on() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.fuzz", "admin", &[], None).await;
    let app = spawn_app(&db).await;
    let token = app.token("admin.fuzz").await;
    let pool = DescriptorPool::decode(akig::proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let methods = methods(&pool);
    assert!(methods.len() > 30, "{} methods", methods.len());

    let mut runner = TestRunner::deterministic();
    let seeds = proptest::num::u64::ANY.prop_map(|seed| seed | 1);
    let raw = proptest::collection::vec(proptest::num::u8::ANY, 0..256);
    let mut refused = Vec::new();
    for method in &methods {
        for _ in 0..STRUCTURED_CASES {
            let seed = seeds.new_tree(&mut runner).expect("seed").current();
            let request = message(&mut Dice(seed), &method.input(), 0);
            let code = send(&app, method, request.clone(), &token).await;
            if matches!(
                code,
                Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss
            ) {
                refused.push(format!("{} {code:?} {request:?}", method.full_name()));
            }
        }
        for _ in 0..RAW_CASES {
            let bytes = raw.new_tree(&mut runner).expect("bytes").current();
            let code = send(&app, method, Raw(bytes.clone()), &token).await;
            if matches!(
                code,
                Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss
            ) {
                refused.push(format!("{} {code:?} raw {bytes:02x?}", method.full_name()));
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    // Still serving, and still answering a plain call.
    let me = app
        .auth_as(&token)
        .await
        .who_am_i(akig::proto::v1::WhoAmIRequest {})
        .await
        .expect("alive");
    assert_eq!(me.into_inner().user.expect("user").username, "admin.fuzz");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}
