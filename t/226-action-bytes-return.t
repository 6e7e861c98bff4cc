# Every way an action can end gives back what it counts against its
# panel: the bytes of its frame (amonitor_connection_buffer_limit,
# t/219) and its place among the panel's actions in flight
# (amonitor_send_queue).  An end that forgot either would make the count
# creep up until a long-lived panel had every action refused.  Twice,
# once with actions of 200 KB (the bytes bound first) and once with
# small ones (the count bound first), one panel measures how many
# actions may wait at once for a target whose handshake never ends,
# ends actions in each way there is (acked, acked success=false, ack
# timeout, the SDK's connection lost, a duplicate msg_id, an unknown
# target, a target that refuses the connection, an invalid action,
# refused for the rate), then measures again: as many must be able to
# wait as at the start.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my $sdk;
$sdk = fake_sdk(port => $t->port(1), target_id => 'ret-ok',
    heartbeat_interval => 0,
    actions => { fail => [0, 'it broke'] },
    on_action => sub {
        my ($s, $env) = @_;
        my $name = $env->{payload}{action} // '';
        # no answer to these two; "drop" also loses the connection
        $s->{no_ack} = $name eq 'silent' || $name eq 'drop' ? 1 : 0;
        Mojo::IOLoop->next_tick(sub { $s->drop_all }) if $name eq 'drop';
        return;
    });
# takes the TCP connection and never answers the upgrade
my $mute = raw_sdk_listen($t->port(2));
# nothing listens there: the dial is refused
my $closed = free_port();

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_ping 0;
    amonitor_max_message_size 256k;
    amonitor_connection_buffer_limit 1m;
    amonitor_send_queue 16;
    amonitor_connect_timeout 30s;
    amonitor_ack_timeout 2s;
    amonitor_reconnect 200ms 1s;
    amonitor_target ret-ok ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target ret-mute ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target ret-closed ws://127.0.0.1:$closed/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the SDK is connected');

my ($panel, $PAD);

sub send_one {
    my (%o) = @_;
    my $id = $o{msg_id} // uuid4();
    $panel->send_json({ msg_id => $id, type => 'action',
        target_id => $o{target}, timestamp => now_ms(),
        payload => { (defined $o{action} ? (action => $o{action}) : ()),
            pad => $PAD } });
    return $id;
}

# the code of the last answer to $id: an error's code, 'ack' or
# 'nack' for an action_ack (with 'dup' for a duplicate), '' for none yet
sub answer_of {
    my ($id) = @_;
    my @a = $panel->answers_to($id);
    return '' unless @a;
    my $a = $a[-1];
    return $a->{payload}{code} // 'error' if $a->{type} eq 'error';
    return 'dup' if $a->{payload}{duplicate};
    return $a->{payload}{success} ? 'ack' : 'nack';
}

# sends one and waits for its answer (a repeated msg_id: a new one)
sub end_of {
    my (%o) = @_;
    my $had = defined $o{msg_id} ? () = $panel->answers_to($o{msg_id}) : 0;
    my $id = send_one(%o);
    wait_for(sub { (() = $panel->answers_to($id)) > $had }, tscale(10));
    return ($id, (() = $panel->answers_to($id)) > $had ? answer_of($id) : '');
}

# how many actions for the mute target may wait at once: $n are sent
# together, the rest are refused; all end TARGET_UNAVAILABLE or
# RATE_LIMITED before this returns
sub waiting_room {
    my ($what, $n) = @_;
    my @ids = map { send_one(target => 'ret-mute', action => 'restart') }
        1 .. $n;
    wait_for(sub { !grep { answer_of($_) eq '' } @ids }, tscale(10));
    my %n;
    $n{ answer_of($_) }++ for @ids;
    note("$what: " . join ', ', map { "$_: $n{$_}" } sort keys %n);
    is(($n{TARGET_UNAVAILABLE} // 0) + ($n{RATE_LIMITED} // 0), $n,
        "$what: the $n actions for the mute target end waiting or refused");
    return $n{TARGET_UNAVAILABLE} // 0;
}

sub every_end {
    my ($what, $size, $n, $min, $max) = @_;

    $panel = $t->panel('/ws/panel');
    $PAD = 'p' x $size;

    my $room = waiting_room($what, $n);
    ok($room >= $min && $room <= $max,
        "$what: $room may wait at once ($min to $max)");

    my ($ok_id, $code) = end_of(target => 'ret-ok', action => 'restart');
    is($code, 'ack', "$what: an acked action");

    (undef, $code) = end_of(target => 'ret-ok', action => 'fail');
    is($code, 'nack', "$what: an action the SDK answers success=false");

    (undef, $code) = end_of(target => 'ret-ok', action => 'silent');
    is($code, 'ACK_TIMEOUT', "$what: an action the SDK never answers");

    (undef, $code) = end_of(target => 'ret-ok', action => 'drop');
    like($code, qr/^(?:TARGET_DISCONNECTED|TARGET_UNAVAILABLE|ACK_TIMEOUT)$/,
        "$what: an action whose SDK connection is lost ($code)");
    ok($sdk->wait_connections(1, tscale(10)),
        "$what: the SDK is connected again");

    (undef, $code) = end_of(target => 'ret-ok', action => 'restart',
        msg_id => $ok_id);
    is($code, 'dup', "$what: a repeated msg_id");

    (undef, $code) = end_of(target => 'ret-nobody', action => 'restart');
    is($code, 'UNKNOWN_TARGET', "$what: an action for an unknown target");

    (undef, $code) = end_of(target => 'ret-closed', action => 'restart');
    is($code, 'TARGET_UNAVAILABLE',
        "$what: an action for a target that refuses");

    (undef, $code) = end_of(target => 'ret-ok');
    is($code, 'INVALID_MESSAGE', "$what: an action without its name");

    # refused for the rate: the mute target's room overfilled once more
    my @over = map { send_one(target => 'ret-mute', action => 'restart') }
        1 .. $room + 2;
    wait_for(sub { !grep { answer_of($_) eq '' } @over }, tscale(10));
    is(scalar(grep { answer_of($_) eq 'RATE_LIMITED' } @over), 2,
        "$what: past the room, the actions are refused");

    (undef, $code) = end_of(target => 'ret-ok', action => 'restart');
    is($code, 'ack', "$what: an acked action after them");

    is(waiting_room($what, $n), $room,
        "$what: as many actions may wait as at the start: every end gave "
        . 'back what it counted');

    $panel->close(1000);
}

# 1m holds 3 or 4 frames of 200 KB besides the one being reassembled
every_end('200 KB actions', 200 * 1024, 8, 3, 4);
# amonitor_send_queue 16: 16 in flight
every_end('small actions', 100, 20, 16, 16);

$t->ignore_log(qr/\[error\].*(?:timed out|handshake|refused|reset|closed)/);
$t->stop;

done_testing;
