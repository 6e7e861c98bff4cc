# An SDK's ack that passes amonitor_max_message_size once converted to the
# encoding its panel chose (a protobuf ack whose message is control
# characters, each six bytes in JSON) still ends the action for that
# panel: an ack written by the agent, final, with the SDK's msg_id and
# success and a message saying what was left out, and a warn line.  A
# panel that chose nothing gets the SDK's bytes; a small ack is converted
# whole.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

sub pb_varint {
    my ($v) = @_;
    my $out = '';
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v = int($v / 128);
    }
    return $out . chr($v);
}

sub pb_len {
    my ($field, $bytes) = @_;
    return pb_varint(($field << 3) | 2) . pb_varint(length $bytes) . $bytes;
}

my $BIG = "\x01" x 60000;    # 60000 bytes in protobuf, 360000 in JSON

# Envelope and ActionAckPayload (proto/amonitor.proto)
sub pb_ack {
    my ($id, $action_msg_id, $message) = @_;
    my $p = pb_len(1, $action_msg_id) . pb_varint(2 << 3) . chr(1)
        . pb_len(3, $message);
    return pb_len(1, $id) . pb_len(3, 'action_ack') . pb_len(4, 'big-a')
        . pb_len(6, $p);
}

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'big-a',
    heartbeat_interval => 0, no_ack => 1,
    on_message => sub {
        my ($self, $env, $bytes, $id) = @_;
        return unless ref $env eq 'HASH' && ($env->{type} // '') eq 'action';
        my $m = $env->{msg_id} =~ /^small/ ? 'done' : $BIG;
        $self->send_binary_to($id, pb_ack("ack-$env->{msg_id}",
            $env->{msg_id}, $m));
    });

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target big-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_max_message_size 64k;
    amonitor_ack_timeout 3s;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed big-a');

my $pj = $t->panel('/ws/panel?encoding=json', name => 'json');
my $px = $t->panel('/ws/panel', name => 'any');

sub answer {
    my ($p, $id) = @_;
    return $p->recv_until(sub {
        ($_[0]{json} && ($_[0]{json}{payload}{action_msg_id} // '') eq $id)
            || ($_[0]{type} eq 'binary' && index($_[0]{data}, $id) >= 0)
    }, 6);
}

subtest 'a JSON panel: the ack too big for JSON ends the action all the '
    . 'same, without its message' => sub {
    $pj->send_json({ msg_id => 'big-1', type => 'action',
        target_id => 'big-a', payload => { action => 'restart' } });
    my $m = answer($pj, 'big-1');
    ok($m, 'the panel got an answer') or return;
    my $e = $m->{json};
    is($e->{type}, 'action_ack', 'an action_ack');
    is($e->{msg_id}, 'ack-big-1', 'with the SDK\'s msg_id');
    is($e->{target_id}, 'big-a', 'the target\'s name');
    ok($e->{payload}{final}, 'final');
    ok($e->{payload}{success}, 'the SDK\'s success');
    like($e->{payload}{message}, qr/too big for this panel's encoding/,
        'the message says what was left out');
    ok(!answer($pj, 'big-1'), 'nothing more about the action (no '
        . 'ACK_TIMEOUT)');
    error_log_like(qr/\[warn\].*amonitor: the ack of action "big-1" is too big for panel #\d+ in its encoding/,
        'a warn line');
};

subtest 'a panel that chose nothing gets the SDK\'s protobuf ack whole'
    => sub {
    $px->send_json({ msg_id => 'big-2', type => 'action',
        target_id => 'big-a', payload => { action => 'restart' } });
    my $m = answer($px, 'big-2');
    ok($m && $m->{type} eq 'binary', 'a binary ack') or return;
    ok(index($m->{data}, $BIG) >= 0, 'with its message');
};

subtest 'a small protobuf ack is converted with its message' => sub {
    $pj->send_json({ msg_id => 'small-1', type => 'action',
        target_id => 'big-a', payload => { action => 'restart' } });
    my $m = answer($pj, 'small-1');
    ok($m, 'the panel got an answer') or return;
    is($m->{json}{payload}{message}, 'done', 'its message');
    ok($m->{json}{payload}{final}, 'final');
};

$_->close(1000) for $pj, $px;

done_testing();
