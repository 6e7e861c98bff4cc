# Patterns that start with text are looked up by that text: a panel's set
# is matched against the served targets whose ids start with it, its
# snapshot reads the records whose ids start with it, and a new target
# is matched against the patterns whose text begins its id.  What a
# panel is told must not change: its snapshot holds what it wants, each
# target once, in the order a panel that takes everything is told them,
# also after targets were learned since the worker first looked (their
# records are added to what it keeps); and the heartbeats of a target
# learned after the panels subscribed reach every panel whose pattern
# matches it, whatever the pattern's text before its "*".

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale);

my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);

# configured targets, not in the order of their ids, at a port nobody
# listens on
my @configured = qw(web-3 db-1 web-1 api-2 db-2 web-2 webby we);
my $targets = join '', map {
    "    amonitor_target $_ ws://127.0.0.1:%%PORT_1%%/$_;\n"
} @configured;

my $sdk_a = fake_sdk(port => $t->port(2), target_id => 'web-0',
    heartbeat_interval => 0);
my $sdk_b = fake_sdk(port => $t->port(3), target_id => 'aaa-9',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 10s 60s;
$targets
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

sub told {
    my ($p) = @_;
    return grep { defined } map {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
            ? $_->{json}{target_id} : undef
    } $p->messages;
}

# what a panel of everything is told (once every record is there)
sub everything {
    my ($n) = @_;
    my @ids;
    wait_for(sub {
        my $all = $t->panel('/ws/panel');
        $all->ping(undef, tscale(10));
        @ids = told($all);
        $all->close;
        return @ids >= $n;
    }, tscale(10));
    return @ids;
}

sub snapshot {
    my ($set, $n) = @_;
    my $p = $t->panel("/ws/panel?targets=$set");
    ok($p->ping(undef, tscale(10)), "$set: answered");
    return ($p, told($p));
}

my @all = everything(scalar @configured);
is(scalar @all, scalar @configured, 'every configured target has a record');

my ($pw, @w) = snapshot('web-*');
is("@w", join(' ', grep {/^web-/} @all), 'web-*: its targets, in order');

my ($pwe, @we) = snapshot('we*,web-*,db-1');
is("@we", join(' ', grep { /^we/ || $_ eq 'db-1' } @all),
    'we*,web-*,db-1: each once, in order');

my ($pstar, @s) = snapshot('*-0');
is(scalar @s, 0, '*-0: nothing yet');

my ($pnone, @n) = snapshot('zzz-*');
is(scalar @n, 0, 'zzz-*: nothing');

# two targets learned after the worker looked at the records
my $q = $t->panel('/ws/panel', name => 'dialer');
for my $d (['web-0', $t->port(2)], ['aaa-9', $t->port(3)]) {
    my $id = uuid4();
    $q->send_json({ msg_id => $id, type => 'action', timestamp => now_ms(),
        target_id => $d->[0], payload => { action => 'noop',
            target_url => "ws://127.0.0.1:$d->[1]/" } });
    ok($q->recv_type('action_ack', action_msg_id => $id,
        timeout => tscale(10)), "$d->[0] is learned and acks");
}

@all = everything(@configured + 2);
is(scalar @all, @configured + 2, 'the learned targets have records');

my ($pl, @l) = snapshot('web-*,aaa-*');
is("@l", join(' ', grep { /^web-/ || /^aaa-/ } @all),
    'web-*,aaa-*: the learned ones too, in order');

my ($pl2, @l2) = snapshot('web-0,a*');
is("@l2", join(' ', grep { $_ eq 'web-0' || /^a/ } @all),
    'web-0,a*: an id and a pattern, in order');

# live: the heartbeat of a target learned after the panels subscribed
$sdk_a->heartbeat;
$sdk_b->heartbeat;

sub beats {
    my ($p, $id) = @_;
    return scalar grep {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'heartbeat'
            && ($_->{json}{target_id} // '') eq $id
    } $p->messages;
}

# the panel of everything opened before the targets were learned: what
# every panel that wants them gets (live, or its last one in a snapshot)
ok(wait_for(sub { beats($q, 'web-0') >= 2 && beats($q, 'aaa-9') >= 2 },
    tscale(5)), 'the panel of everything gets both heartbeats');
ok($q->ping(undef, tscale(10)), 'it is answered');
my %n = ('web-0' => beats($q, 'web-0'), 'aaa-9' => beats($q, 'aaa-9'));

for my $c ([$pw, 'web-*', 1, 0], [$pwe, 'we*,web-*,db-1', 1, 0],
    [$pstar, '*-0', 1, 0], [$pnone, 'zzz-*', 0, 0],
    [$pl, 'web-*,aaa-*', 1, 1], [$pl2, 'web-0,a*', 1, 1])
{
    my ($p, $set, $a, $b) = @$c;
    my ($na, $nb) = ($a ? $n{'web-0'} : 0, $b ? $n{'aaa-9'} : 0);
    if ($a || $b) {
        wait_for(sub { beats($p, 'web-0') >= $na && beats($p, 'aaa-9') >= $nb },
            tscale(5));
    }
    ok($p->ping(undef, tscale(10)), "$set: answered");
    is(beats($p, 'web-0'), $na, "$set: web-0's heartbeats: $na");
    is(beats($p, 'aaa-9'), $nb, "$set: aaa-9's heartbeats: $nb");
}

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->stop;
$sdk_a->stop;
$sdk_b->stop;

done_testing;
