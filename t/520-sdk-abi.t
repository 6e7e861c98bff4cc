# The SDK's ABI as packagers see it: the shared library exports exactly
# the names of sdk/amonitor_sdk.map (in their version nodes) and the
# static archive has no other global symbol; the public header declares
# the same list; the soname; a program may define names the SDK uses
# inside (amon_free); install-sdk honours PREFIX/LIBDIR/DESTDIR and writes
# a relocatable .pc without private include paths; the link honours
# LDFLAGS.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use Test::More;

my $root = "$FindBin::Bin/..";
my $sdk = "$root/build/sdk";
my $so = "$sdk/libamonitor_sdk.so.1";
my $ar = "$sdk/libamonitor_sdk.a";

for my $f ($so, $ar) {
    next if -e $f;
    fail("$f is built (make build-sdk)");
    done_testing();
    exit;
}

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or die "$file: $!";
    local $/;
    return <$fh>;
}

sub run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# the export list: name => version node
my $map = slurp("$root/sdk/amonitor_sdk.map");
my (%export, $node);
for my $line (split /\n/, $map) {
    $node = $1 if $line =~ /^(AMONITOR_SDK_[0-9.]+)\s*\{/;
    $export{$1} = $node if $line =~ /^\s+(amonitor_\w+);/;
}
my @globals_text = $map =~ /global:(.*?)(?:local:|\})/gs;
is(scalar(grep {/\*/} @globals_text), 0, 'no wildcard in a global: list');
ok(scalar(keys %export) >= 30, 'the map lists the exports')
    or diag(join ' ', sort keys %export);

# the shared library: exactly the list, each in its node
my ($rc, $out) = run("nm -D --defined-only '$so'");
is($rc, 0, 'nm -D runs');
my %dyn;
for (split /\n/, $out) {
    my ($type, $name) = (split)[1, 2];
    next if $type eq 'A'; # the version nodes themselves
    $dyn{$name} = 1;
}
is_deeply([sort keys %dyn],
    [sort map { "$_\@\@$export{$_}" } keys %export],
    'the .so exports the list, in its version nodes');

# the static archive: no other global
($rc, $out) = run("nm -g --defined-only '$ar'");
is($rc, 0, 'nm on the archive runs');
my @globals = sort map { (split)[2] }
    grep { /^[0-9a-f]+ [A-Z] / } split /\n/, $out;
is_deeply(\@globals, [sort keys %export],
    'the archive defines no global outside the list');

# the header declares the same functions
my $h = slurp("$root/sdk/include/amonitor.h");
$h =~ s{/\*.*?\*/}{}gs;
my %decl;
while ($h =~ /^[a-z][\w \*]*?\b(amonitor_\w+)\(/mg) {
    $decl{$1} = 1;
}
is_deeply([sort keys %decl], [sort keys %export],
    'amonitor.h declares exactly the exported functions');

# the soname
($rc, $out) = run("readelf -d '$so'");
like($out, qr/\(SONAME\)\s+Library soname: \[libamonitor_sdk\.so\.1\]/,
    'soname libamonitor_sdk.so.1');

my $tmp = tempdir('amon-abi-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# a program with its own amon_free, amon_uuid4 and amonitor_log
open(my $fh, '>', "$tmp/clash.c") or die;
print $fh <<'C';
#include <stdio.h>
#include <amonitor.h>

int amon_free = 7;

int
amon_uuid4(void)
{
    return 3;
}

void
amonitor_log(void)
{
}

int
main(void)
{
    amonitor_sdk_t *ctx;
    int             ok;

    ctx = amonitor_sdk_new(NULL);
    ok = ctx != NULL && ctx->err == AMONITOR_OK && amonitor_sdk_fd(ctx) >= 0;
    amonitor_sdk_free(ctx);
    amonitor_log();
    printf("%d %d %d\n", ok, amon_free, amon_uuid4());
    return 0;
}
C
close($fh);

($rc, $out) = run("cc -Wall -I$root/sdk/include $tmp/clash.c -o $tmp/clash"
    . " $ar -lcjson -lprotobuf-c -lssl -lcrypto -pthread");
is($rc, 0, 'a program defining amon_free links with the static archive')
    or diag($out);
($rc, $out) = run("$tmp/clash");
is($out, "1 7 3\n", 'and runs with its own definitions and the SDK\'s');

# install-sdk: multiarch LIBDIR, DESTDIR, a relocatable .pc
my $dest = "$tmp/dest";
my $libdir = '/usr/lib/x86_64-linux-gnu';
($rc, $out) = run("make -s -C $root install-sdk DESTDIR=$dest PREFIX=/usr"
    . " LIBDIR=$libdir");
is($rc, 0, 'make install-sdk with LIBDIR') or diag($out);
for my $f ("/usr/include/amonitor.h", "$libdir/libamonitor_sdk.a",
    "$libdir/libamonitor_sdk.so.1", "$libdir/libamonitor_sdk.so",
    "$libdir/pkgconfig/amonitor_sdk.pc") {
    ok(-e "$dest$f", "installed $f");
}
my $pc = -e "$dest$libdir/pkgconfig/amonitor_sdk.pc"
    ? slurp("$dest$libdir/pkgconfig/amonitor_sdk.pc") : '';
like($pc, qr{^libdir=\$\{prefix\}/lib/x86_64-linux-gnu$}m,
    '.pc: libdir relative to prefix');
like($pc, qr{^includedir=\$\{prefix\}/include$}m,
    '.pc: includedir relative to prefix');
unlike($pc, qr/Requires/, '.pc: no Requires (nothing leaks into --cflags)');

{
    local $ENV{PKG_CONFIG_PATH} = "$dest$libdir/pkgconfig";
    ($rc, $out) = run('pkg-config --cflags --libs amonitor_sdk');
    is($rc, 0, 'pkg-config reads the installed .pc') or diag($out);
    unlike($out, qr/cjson/, 'no private include path in --cflags --libs');
    ($rc, $out) = run('pkg-config --static --libs amonitor_sdk');
    like($out, qr/-lcjson -lprotobuf-c -lssl -lcrypto/,
        '--static adds the libraries');
}

# the default layout moved elsewhere: pkg-config --define-prefix follows
my $dest2 = "$tmp/dest2";
($rc, $out) = run("make -s -C $root install-sdk DESTDIR=$dest2"
    . " PREFIX=/opt/amon");
is($rc, 0, 'make install-sdk with the default LIBDIR') or diag($out);
{
    local $ENV{PKG_CONFIG_PATH} = "$dest2/opt/amon/lib/pkgconfig";
    ($rc, $out) = run('pkg-config --define-prefix --cflags --libs'
        . ' amonitor_sdk');
    like($out, qr{^-I\Q$dest2\E/opt/amon/include\s+-L\Q$dest2\E/opt/amon/lib
        \s+-lamonitor_sdk\s*$}x, 'relocated: the moved directories only')
        or diag($out);
}

# the shared link honours LDFLAGS (a real link, in a scratch build tree)
($rc, $out) = run("make -s -C $root BUILD=$tmp/build"
    . " LDFLAGS=-Wl,-z,now $tmp/build/sdk/libamonitor_sdk.so.1");
is($rc, 0, 'the .so links with LDFLAGS=-Wl,-z,now') or diag($out);
($rc, $out) = run("readelf -d $tmp/build/sdk/libamonitor_sdk.so.1");
like($out, qr/\(FLAGS\)\s+BIND_NOW|\(FLAGS_1\)\s+Flags: NOW/,
    'LDFLAGS reached the link (BIND_NOW)');
($rc, $out) = run("readelf -d '$so'");
unlike($out, qr/BIND_NOW|Flags: NOW/, 'the default build has no BIND_NOW');

done_testing();
