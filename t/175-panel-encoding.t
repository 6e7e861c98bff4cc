# A panel chooses its encoding (subprotocol amonitor.v1.json or
# amonitor.v1.proto, or ?encoding=json|protobuf) and receives everything in
# it: heartbeats the SDK wrote in the other encoding are converted (once
# per message), acks keep "final", the agent's own messages follow, and so
# does the snapshot a new panel gets (state and last heartbeat).  A
# panel that chooses nothing gets each message as its sender wrote it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

# --- a minimal protobuf reader: field => [values] ---------------------------

sub varint {
    my ($buf, $pos) = @_;
    my ($v, $shift) = (0, 0);
    while ($$pos < length $$buf) {
        my $b = ord substr($$buf, $$pos++, 1);
        $v |= ($b & 0x7f) << $shift;
        return $v unless $b & 0x80;
        $shift += 7;
    }
    die "truncated varint";
}

sub pb {
    my ($buf) = @_;
    my ($pos, %f) = (0);
    while ($pos < length $buf) {
        my $key = varint(\$buf, \$pos);
        my ($field, $wt) = ($key >> 3, $key & 7);
        if ($wt == 0) {
            push @{ $f{$field} }, varint(\$buf, \$pos);
        } elsif ($wt == 2) {
            my $n = varint(\$buf, \$pos);
            push @{ $f{$field} }, substr($buf, $pos, $n);
            $pos += $n;
        } else {
            die "wire type $wt";
        }
    }
    return \%f;
}

sub one { my ($f, $n) = @_; return $f->{$n} ? $f->{$n}[0] : undef }

sub pb_str { my ($f, $s) = @_; return chr(($f << 3) | 2) . chr(length $s) . $s }

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'enc-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target enc-a ws://127.0.0.1:%%PORT_1%%/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /ws/snap { amonitor_panel on; amonitor_panel_snapshot on; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed enc-a');

my $pp = $t->panel('/ws/panel', protocols => ['amonitor.v1.proto'],
    name => 'proto');
my $pj = $t->panel('/ws/panel?encoding=json', name => 'json');
my $px = $t->panel('/ws/panel', protocols => ['amonitor.v1'], name => 'any');
my $pq = $t->panel('/ws/panel?encoding=protobuf', name => 'query-proto');

subtest 'a JSON heartbeat: protobuf to the proto panel, the same bytes to '
    . 'the others' => sub {
    my $hb = '{"msg_id":"hb-1","type":"heartbeat","target_id":"enc-a",'
        . '"timestamp":1700000000000,"payload":{"target_id":"enc-a",'
        . '"metrics":{"cpu":"1.5","mem":"42"}}}';
    $sdk->send_all($hb);

    my $b = $pp->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
    ok($b, 'the proto panel got a binary frame') or return;
    my $e = pb($b->{data});
    is(one($e, 1), 'hb-1', 'msg_id');
    is(one($e, 3), 'heartbeat', 'type');
    is(one($e, 4), 'enc-a', 'target_id');
    is(one($e, 5), 1700000000000, 'timestamp');
    my $p = pb(one($e, 6));
    is(one($p, 1), 'enc-a', 'payload target_id');
    my %m = map { my $x = pb($_); (one($x, 1) => one($x, 2)) }
        @{ $p->{2} };
    is_deeply(\%m, { cpu => '1.5', mem => '42' }, 'metrics map');
    ok(!$e->{7}, 'no source: the SDK names itself as the agent does');

    my $q = $pq->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
    is($q && one(pb($q->{data}), 1), 'hb-1',
        '?encoding=protobuf: protobuf too');

    for my $q ($pj, $px) {
        my $m = $q->recv_until(sub { $_[0]{type} eq 'text'
            && ($_[0]{json}{msg_id} // '') eq 'hb-1' }, 5);
        is($m && $m->{data}, $hb, $q->name . ': the SDK\'s bytes');
    }
};

subtest 'a new proto panel gets its snapshot in protobuf too: the state, '
    . 'the JSON heartbeat converted' => sub {
    my $n = $t->panel('/ws/snap?encoding=protobuf', name => 'new-proto');
    my $s = $n->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
    ok($s, 'its first frame is binary') or return;
    my $e = pb($s->{data});
    is(one($e, 3), 'target_status', 'the target\'s state');
    is(one($e, 4), 'enc-a', 'of enc-a');
    like(one($e, 6), qr/"state":"up"/, 'up');
    my $h = $n->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
    ok($h, 'then a binary frame') or return;
    $e = pb($h->{data});
    is(one($e, 1), 'hb-1', 'the last heartbeat');
    is(one($e, 3), 'heartbeat', 'as protobuf');
    is(scalar(grep { $_->{type} eq 'text' } $n->messages), 0,
        'no text frame');
    $n->close(1000);
};

subtest 'a protobuf heartbeat: JSON to the json panel, the same bytes to '
    . 'the others' => sub {
    my $metrics = pb_str(1, 'load') . pb_str(2, '0.7');
    my $payload = pb_str(1, 'enc-a') . pb_str(2, $metrics);
    my $env = pb_str(1, 'hb-2') . pb_str(3, 'heartbeat')
        . pb_str(4, 'enc-a') . pb_str(6, $payload);
    $sdk->send_all_binary($env);

    my $m = $pj->recv_until(sub { $_[0]{type} eq 'text'
        && ($_[0]{json}{msg_id} // '') eq 'hb-2' }, 5);
    ok($m, 'the json panel got it as text') or return;
    is($m->{data}, '{"msg_id":"hb-2","type":"heartbeat","target_id":"enc-a",'
        . '"payload":{"target_id":"enc-a","metrics":{"load":"0.7"}}}',
        'converted to JSON');

    for my $q ($pp, $px) {
        my $b = $q->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
        is($b && $b->{data}, $env, $q->name . ': the SDK\'s bytes');
    }
};

subtest 'a new json panel gets its snapshot in JSON: the protobuf '
    . 'heartbeat converted' => sub {
    my $n = $t->panel('/ws/snap?encoding=json', name => 'new-json');
    my $s = $n->recv_type('target_status', timeout => 5);
    is($s && $s->{json}{payload}{state}, 'up', 'the state as JSON');
    my $h = $n->recv_until(sub { ($_[0]{json}{msg_id} // '') eq 'hb-2' }, 5);
    is($h && $h->{type}, 'text', 'the last heartbeat as text');
    is($h && $h->{json}{payload}{metrics}{load}, '0.7', 'converted');
    is(scalar(grep { $_->{type} eq 'binary' } $n->messages), 0,
        'no binary frame');

    my $b = $t->panel('/ws/snap?encoding=protobuf', name => 'new-proto-2');
    my $f = $b->recv_until(sub { $_[0]{type} eq 'binary'
        && one(pb($_[0]{data}), 3) eq 'heartbeat' }, 5);
    my $metrics = pb_str(1, 'load') . pb_str(2, '0.7');
    is($f && $f->{data}, pb_str(1, 'hb-2') . pb_str(3, 'heartbeat')
        . pb_str(4, 'enc-a') . pb_str(6, pb_str(1, 'enc-a')
        . pb_str(2, $metrics)), 'a proto panel: the SDK\'s bytes');
    $_->close(1000) for $n, $b;
};

subtest 'an ack to a proto panel is protobuf with final set' => sub {
    $pp->send_json({ msg_id => 'act-1', trace_id => 'tr', type => 'action',
        target_id => 'enc-a', payload => { action => 'restart' } });
    my $b = $pp->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
    ok($b, 'the answer is binary') or return;
    my $e = pb($b->{data});
    is(one($e, 3), 'action_ack', 'an action_ack');
    my $p = pb(one($e, 6));
    is(one($p, 1), 'act-1', 'action_msg_id');
    is(one($p, 2), 1, 'success');
    is(one($p, 7), 1, 'final = 7 set');
};

subtest 'an error to a proto panel is protobuf, whatever the action was '
    . 'written in' => sub {
    $pp->send_json({ msg_id => 'act-2', trace_id => 'tr2', type => 'action',
        target_id => 'nope', payload => { action => 'restart' } });
    my $b = $pp->recv_until(sub { $_[0]{type} eq 'binary' }, 5);
    ok($b, 'the answer is binary') or return;
    my $e = pb($b->{data});
    is(one($e, 1), 'act-2', 'msg_id of the action');
    is(one($e, 2), 'tr2', 'its trace_id');
    is(one($e, 3), 'error', 'an error');
    my $p = pb(one($e, 6));
    is(one($p, 1), 'UNKNOWN_TARGET', 'code');
    is(one($p, 3), 'act-2', 'action_msg_id = 3');
    is(one($p, 4), 1, 'final = 4');
};

subtest 'target_status reaches a proto panel as protobuf' => sub {
    $sdk->close_all;
    my $b = $pp->recv_until(sub { $_[0]{type} eq 'binary'
        && one(pb($_[0]{data}), 3) eq 'target_status' }, 5);
    ok($b, 'a binary target_status') or return;
    my $e = pb($b->{data});
    is(one($e, 4), 'enc-a', 'target_id');
    like(one($e, 6), qr/"state":"down"/, 'its payload: the JSON text');
    my $m = $pj->recv_type('target_status', timeout => 5);
    is($m && $m->{json}{payload}{state}, 'down', 'JSON to the json panel');
};

$_->close(1000) for $pp, $pj, $px, $pq;

done_testing();
