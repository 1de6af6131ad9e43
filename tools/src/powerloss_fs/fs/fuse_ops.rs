//! The FUSE entry points: each calls the matching operation of [`PowerLossFs`] and turns its
//! result into the kernel's reply.

use super::*;

impl Filesystem for PowerLossFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().and_then(|state| self.attr(&state, ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(error) => reply.error(error),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, uid, gid, size, atime, mtime) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(error) => reply.error(error),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Only regular files: a broker makes nothing else.
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM);
            return;
        }
        match self.do_create(parent, name, mode, umask, false) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.do_create(parent, name, mode, umask, true) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_unlink(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_unlink(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.do_rename(parent, name, new_parent, new_name, flags) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let opened = self
            .lock()
            .and_then(|mut state| self.open_node(&mut state, ino.0));
        match opened {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(error) => reply.error(error),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let created = self
            .do_create(parent, name, mode, umask, false)
            .and_then(|attr| {
                let mut state = self.lock()?;
                self.open_node(&mut state, attr.ino.0)?;
                Ok(attr)
            });
        match created {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(error) => reply.error(error),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.do_read(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(error) => reply.error(error),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.do_write(ino, offset, data) {
            Ok(written) => reply.written(written),
            Err(error) => reply.error(error),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) does not make anything durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut state) = self.lock() {
            if let Ok(node) = state.node_mut(ino) {
                node.open_handles = node.open_handles.saturating_sub(1);
                if node.open_handles == 0 {
                    // The overlay stays (unsynced data outlives the last close); only the fd goes.
                    node.file = None;
                }
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.do_fsync(ino) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.lock().and_then(|state| {
            let path = state.node(ino)?.path.clone();
            let is_root = path.as_os_str().is_empty();
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ino.0, FileType::Directory, "..".into()),
            ];
            for entry in fs::read_dir(self.full(&path)).map_err(errno)? {
                let entry = entry.map_err(errno)?;
                let name = entry.file_name();
                if is_root && name == TRASH_DIR {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                entries.push((std::os::unix::fs::DirEntryExt::ino(&entry), kind, name));
            }
            Ok(entries)
        });
        match listed {
            Ok(entries) => {
                for (index, (entry_ino, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(entry_ino), index as u64 + 1, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(error) => reply.error(error),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.lock() {
            Ok(mut state) => {
                // The journal knows directories by node id; a directory looked up again under
                // another id (it was renamed) is the same backing directory, so match by path too.
                let mut ids = vec![ino.0];
                if let Ok(node) = state.node(ino) {
                    let path = node.path.clone();
                    if let Some(other) = state.dir_id_of(&path) {
                        ids.push(other);
                    }
                }
                for id in ids {
                    state.journal.sync_dir(id);
                }
                reply.ok();
            }
            Err(error) => reply.error(error),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // SAFETY: statvfs(3) fills the zeroed struct we own; the path is a valid C string.
        let stats = std::ffi::CString::new(self.backing.as_os_str().as_encoded_bytes())
            .map_err(|_| Errno::EINVAL)
            .and_then(|path| {
                let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
                let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
                if rc == 0 {
                    Ok(stats)
                } else {
                    Err(errno(io::Error::last_os_error()))
                }
            });
        match stats {
            Ok(stats) => reply.statfs(
                stats.f_blocks,
                stats.f_bfree,
                stats.f_bavail,
                stats.f_files,
                stats.f_ffree,
                stats.f_bsize as u32,
                stats.f_namemax as u32,
                stats.f_frsize as u32,
            ),
            Err(error) => reply.error(error),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain allocation only: it can grow the file, which is a size change like set_len.
        if mode != 0 {
            reply.error(Errno::from_i32(libc::EOPNOTSUPP));
            return;
        }
        let grown = self.lock().and_then(|mut state| {
            let node = state.node_mut(ino)?;
            let overlay = self.overlay_of(node)?;
            let end = offset.saturating_add(length);
            if end > overlay.size_bytes() {
                overlay.set_len(end);
            }
            Ok(())
        });
        match grown {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }
}
