# The installed amonitor_sdk.pc and pkg-config's --define-prefix (which
# takes as prefix the directory two levels above the .pc's pkgconfig/,
# i.e. LIBDIR/..): a LIBDIR one directory below PREFIX (lib, lib64)
# relocates; a multiarch LIBDIR (PREFIX/lib/x86_64-linux-gnu) cannot, the
# .pc says so in a comment and points to PKG_CONFIG_SYSROOT_DIR, which
# gives the right paths for a DESTDIR copy; docs/sdk.md says the same.
# (t/520-sdk-abi.t checks the rest of install-sdk.)

use strict;
use warnings;

use FindBin;
use Test::More;
use File::Temp qw(tempdir);

my $root = "$FindBin::Bin/..";
my $tmp = tempdir('amon-pc-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return '';
    local $/;
    return <$fh> // '';
}

sub pc_flags {
    my ($dir, %env) = @_;
    local $ENV{PKG_CONFIG_PATH} = $dir;
    local @ENV{ keys %env } = values %env;
    my ($rc, $out) = run(($env{DEFINE} ? 'pkg-config --define-prefix'
        : 'pkg-config') . ' --cflags --libs amonitor_sdk');
    $out =~ s/\s+$//;
    return $out;
}

# the default LIBDIR and lib64: --define-prefix relocates
for my $lib ('lib', 'lib64') {
    my $dest = "$tmp/$lib";
    my ($rc, $out) = run("make -s -C $root install-sdk DESTDIR=$dest"
        . " PREFIX=/opt/amon LIBDIR=/opt/amon/$lib");
    is($rc, 0, "install-sdk LIBDIR=PREFIX/$lib") or diag($out);
    my $pc = slurp("$dest/opt/amon/$lib/pkgconfig/amonitor_sdk.pc");
    unlike($pc, qr/^#|\@RELOCATE_NOTE\@/m, '... the .pc has no note');
    is(pc_flags("$dest/opt/amon/$lib/pkgconfig", DEFINE => 1),
        "-I$dest/opt/amon/include -L$dest/opt/amon/$lib -lamonitor_sdk",
        '... and --define-prefix relocates it');
}

# multiarch: no relocation by --define-prefix; the .pc says so
my $dest = "$tmp/multiarch";
my $libdir = '/usr/lib/x86_64-linux-gnu';
my ($rc, $out) = run("make -s -C $root install-sdk DESTDIR=$dest"
    . " PREFIX=/usr LIBDIR=$libdir");
is($rc, 0, 'install-sdk with a multiarch LIBDIR') or diag($out);
my $pc = slurp("$dest$libdir/pkgconfig/amonitor_sdk.pc");
like($pc, qr/^# libdir is not one directory below prefix: pkg-config (?#
    )--define-prefix .*does not relocate/m,
    'the .pc says --define-prefix does not relocate it') or diag($pc);
like($pc, qr/^# For a copy under DESTDIR use PKG_CONFIG_SYSROOT_DIR/m,
    '... and what does');
like($pc, qr/^prefix=\/usr$/m, '... prefix is still /usr');
is(pc_flags("$dest$libdir/pkgconfig", PKG_CONFIG_SYSROOT_DIR => $dest),
    "-I$dest/usr/include -L$dest$libdir -lamonitor_sdk",
    'PKG_CONFIG_SYSROOT_DIR=DESTDIR gives the copy\'s directories');
is(pc_flags("$dest$libdir/pkgconfig"), '-lamonitor_sdk',
    'in place, the system directories are left out as usual');

# the build tree's own .pc has no note either
($rc, $out) = run("make -s -C $root $root/build/sdk/amonitor_sdk.pc");
unlike(slurp("$root/build/sdk/amonitor_sdk.pc"), qr/RELOCATE_NOTE/,
    'build/sdk/amonitor_sdk.pc has no placeholder left');

# docs/sdk.md states the rule
my $doc = slurp("$root/docs/sdk.md");
ok($doc =~ /--define-prefix.*LIBDIR.*one\s+directory\s+below/s,
    'docs/sdk.md says when --define-prefix relocates');
ok($doc =~ /PKG_CONFIG_SYSROOT_DIR/, '... and names PKG_CONFIG_SYSROOT_DIR');

done_testing();
